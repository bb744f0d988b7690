//! Route paths as users write them: `/users/:id/files/*rest`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// `:name`: matches one segment.
    Param(String),
    /// `*name`: matches the rest of the path, only as the last segment.
    Wildcard(String),
}

/// A validated route path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePath {
    pub segments: Vec<Segment>,
}

impl RoutePath {
    pub fn parse(text: &str) -> Result<RoutePath, String> {
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| format!("route path \"{text}\" must start with \"/\""))?;
        if text.contains(['?', '#']) {
            return Err(format!("route path \"{text}\" must not contain a query or fragment"));
        }
        let mut segments = Vec::new();
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut names = std::collections::HashSet::new();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let seg = if let Some(name) = part.strip_prefix(':') {
                Segment::Param(check_name(text, name, ':')?)
            } else if let Some(name) = part.strip_prefix('*') {
                if !last {
                    return Err(format!(
                        "route path \"{text}\": wildcard \"*{name}\" must be the last segment"
                    ));
                }
                Segment::Wildcard(check_name(text, name, '*')?)
            } else if part.is_empty() && !last {
                return Err(format!("route path \"{text}\" has an empty segment (\"//\")"));
            } else if part.contains([':', '*']) {
                return Err(format!(
                    "route path \"{text}\": \"{part}\" mixes text with a parameter; a parameter must be a whole segment"
                ));
            } else {
                Segment::Literal((*part).to_string())
            };
            if let Segment::Param(n) | Segment::Wildcard(n) = &seg
                && !names.insert(n.clone())
            {
                return Err(format!("route path \"{text}\" uses the parameter name \"{n}\" twice"));
            }
            segments.push(seg);
        }
        Ok(RoutePath { segments })
    }

    /// The path in `matchit` 0.9 syntax (`/users/{id}/{*rest}`), with literal
    /// braces escaped.
    pub fn to_matchit(&self) -> String {
        let mut out = String::new();
        if self.segments.is_empty() {
            return "/".into();
        }
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(l) => out.push_str(&l.replace('{', "{{").replace('}', "}}")),
                Segment::Param(n) => {
                    out.push('{');
                    out.push_str(n);
                    out.push('}');
                }
                Segment::Wildcard(n) => {
                    out.push_str("{*");
                    out.push_str(n);
                    out.push('}');
                }
            }
        }
        out
    }

    /// Two paths with the same shape match the same requests, whatever their
    /// parameters are called.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push(':'),
                Segment::Wildcard(_) => out.push('*'),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

impl fmt::Display for RoutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => write!(f, "/{l}")?,
                Segment::Param(n) => write!(f, "/:{n}")?,
                Segment::Wildcard(n) => write!(f, "/*{n}")?,
            }
        }
        Ok(())
    }
}

fn check_name(path: &str, name: &str, sigil: char) -> Result<String, String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "route path \"{path}\": \"{sigil}{name}\" needs a name of letters, digits and _"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_wildcards() {
        let p = RoutePath::parse("/echo/:name/files/*rest").unwrap();
        assert_eq!(p.to_matchit(), "/echo/{name}/files/{*rest}");
        assert_eq!(p.shape(), "/echo/:/files/*");
        assert_eq!(p.to_string(), "/echo/:name/files/*rest");
        assert_eq!(RoutePath::parse("/").unwrap().to_matchit(), "/");
        assert_eq!(RoutePath::parse("/a/").unwrap().to_matchit(), "/a/");
        assert_eq!(RoutePath::parse("/{x}").unwrap().to_matchit(), "/{{x}}");
    }

    #[test]
    fn bad_paths() {
        assert!(RoutePath::parse("echo").unwrap_err().contains("start with"));
        assert!(RoutePath::parse("/*a/b").unwrap_err().contains("last segment"));
        assert!(RoutePath::parse("/:a/:a").unwrap_err().contains("twice"));
        assert!(RoutePath::parse("/a//b").unwrap_err().contains("empty segment"));
        assert!(RoutePath::parse("/x:y").unwrap_err().contains("whole segment"));
        assert!(RoutePath::parse("/:1x").unwrap_err().contains("needs a name"));
        assert!(RoutePath::parse("/a?b").unwrap_err().contains("query"));
    }
}
