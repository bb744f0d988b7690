//! Message topics, NATS style: tokens separated by `.`; in a pattern `*`
//! matches one token and `>` (last only) one or more. The same syntax works
//! on the in-process broker and on NATS.

use std::fmt;

/// Checks a concrete topic: non-empty tokens of visible characters, no wildcards.
pub fn check_topic(topic: &str) -> Result<(), String> {
    check(topic, false)
}

fn check(text: &str, wildcards: bool) -> Result<(), String> {
    if text.is_empty() {
        return Err("a topic cannot be empty".into());
    }
    let tokens: Vec<&str> = text.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(format!("\"{text}\" has an empty token (two dots, or a dot at an end)"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("\"{text}\" contains whitespace"));
        }
        let wild = *token == "*" || *token == ">";
        if !wildcards && (wild || token.contains(['*', '>'])) {
            return Err(format!(
                "\"{text}\": a topic to publish on cannot contain wildcards (* or >)"
            ));
        }
        if wildcards && !wild && token.contains(['*', '>']) {
            return Err(format!("\"{text}\": * and > must be whole tokens"));
        }
        if *token == ">" && i + 1 != tokens.len() {
            return Err(format!("\"{text}\": > must be the last token"));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    text: String,
}

impl TopicPattern {
    pub fn parse(text: &str) -> Result<TopicPattern, String> {
        check(text, true)?;
        Ok(TopicPattern { text: text.to_string() })
    }

    pub fn matches(&self, topic: &str) -> bool {
        let mut pattern = self.text.split('.');
        let mut subject = topic.split('.');
        loop {
            match (pattern.next(), subject.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(p), Some(s)) if p == s => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        let p = |s| TopicPattern::parse(s).unwrap();
        assert!(p("orders.created").matches("orders.created"));
        assert!(!p("orders.created").matches("orders.created.eu"));
        assert!(p("orders.*").matches("orders.created"));
        assert!(!p("orders.*").matches("orders"));
        assert!(!p("orders.*").matches("orders.created.eu"));
        assert!(p("orders.>").matches("orders.created.eu"));
        assert!(!p("orders.>").matches("orders"));
        assert!(p(">").matches("anything.at.all"));
        assert!(p("*.created").matches("users.created"));
    }

    #[test]
    fn bad_topics_say_why() {
        assert!(check_topic("orders..x").unwrap_err().contains("empty token"));
        assert!(
            check_topic("orders.*")
                .unwrap_err()
                .contains("cannot contain wildcards")
        );
        assert!(check_topic("a b").unwrap_err().contains("whitespace"));
        assert!(TopicPattern::parse("a.>.b").unwrap_err().contains("last token"));
        assert!(TopicPattern::parse("a.b*").unwrap_err().contains("whole tokens"));
        assert!(check_topic("").is_err());
    }
}
