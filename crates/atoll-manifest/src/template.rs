//! Header value templates: `Bearer {{ secret.github_token }}`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    /// `{{ var.name }}`: a non-secret variable.
    Var(String),
    /// `{{ secret.name }}`: a secret variable.
    Secret(String),
}

/// A string with `{{ var.x }}` / `{{ secret.x }}` holes, filled by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(TemplatePart::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed \"{{{{\" in \"{text}\""))?;
            let inner = after[..end].trim();
            let part = match inner.split_once('.') {
                Some(("var", name)) => TemplatePart::Var(name.trim().to_string()),
                Some(("secret", name)) => TemplatePart::Secret(name.trim().to_string()),
                _ => {
                    return Err(format!(
                        "\"{{{{ {inner} }}}}\" in \"{text}\": write {{{{ var.NAME }}}} or {{{{ secret.NAME }}}}"
                    ));
                }
            };
            parts.push(part);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Names of the variables the template reads, with whether each is
    /// expected to be secret.
    pub fn references(&self) -> impl Iterator<Item = (&str, bool)> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Var(n) => Some((n.as_str(), false)),
            TemplatePart::Secret(n) => Some((n.as_str(), true)),
            TemplatePart::Text(_) => None,
        })
    }

    /// Fills the holes with `lookup(name)`.
    pub fn render(&self, mut lookup: impl FnMut(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Var(n) | TemplatePart::Secret(n) => {
                    out.push_str(&lookup(n).ok_or_else(|| format!("variable \"{n}\" has no value"))?)
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => f.write_str(t)?,
                TemplatePart::Var(n) => write!(f, "{{{{ var.{n} }}}}")?,
                TemplatePart::Secret(n) => write!(f, "{{{{ secret.{n} }}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t = Template::parse("Bearer {{ secret.token }} for {{var.user}}!").unwrap();
        assert_eq!(
            t.references().collect::<Vec<_>>(),
            vec![("token", true), ("user", false)]
        );
        let out = t
            .render(|n| Some(if n == "token" { "s3cr3t".into() } else { "ada".into() }))
            .unwrap();
        assert_eq!(out, "Bearer s3cr3t for ada!");
        assert_eq!(t.to_string(), "Bearer {{ secret.token }} for {{ var.user }}!");
        assert_eq!(
            Template::parse("plain").unwrap().parts,
            vec![TemplatePart::Text("plain".into())]
        );
    }

    #[test]
    fn rejects_malformed_holes() {
        assert!(Template::parse("Bearer {{ secret.x").unwrap_err().contains("unclosed"));
        assert!(Template::parse("{{ env.HOME }}").unwrap_err().contains("var.NAME"));
    }
}
