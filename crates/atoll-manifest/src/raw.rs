//! The manifest exactly as written, with spans, before any validation.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub app: Option<Spanned<RawApp>>,
    #[serde(default)]
    pub functions: BTreeMap<Spanned<String>, Spanned<RawFunction>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub variables: BTreeMap<Spanned<String>, Spanned<RawVariable>>,
    #[serde(default)]
    pub http_auth: Vec<Spanned<RawHttpAuth>>,
    #[serde(default)]
    pub schedules: Vec<Spanned<RawSchedule>>,
    #[serde(default)]
    pub subscriptions: Vec<Spanned<RawSubscription>>,
    #[serde(default)]
    pub queries: BTreeMap<Spanned<String>, Spanned<RawQuery>>,
}

/// `[queries.NAME]`: one statement (`sql`) or a group run as one
/// transaction (`transaction`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    pub sql: Option<Spanned<String>>,
    pub transaction: SpannedList,
    pub database: Option<Spanned<String>>,
    pub max_rows: Option<Spanned<i64>>,
}

/// What `[[routes]]`, `[[schedules]]` and `[[subscriptions]]` share.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub name: Option<Spanned<String>>,
    pub every: Option<Spanned<String>>,
    pub cron: Option<Spanned<String>>,
    #[serde(default)]
    pub state: BTreeMap<String, String>,
    #[serde(rename = "fn")]
    pub function: Option<Spanned<String>>,
    pub steps: Option<Spanned<Vec<Spanned<RawStep>>>>,
    pub response: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubscription {
    pub topic: Spanned<String>,
    pub reply_to: Option<Spanned<String>>,
    pub durable: Option<Spanned<bool>>,
    pub max_deliver: Option<Spanned<i64>>,
    pub dead_letter: Option<Spanned<String>>,
    #[serde(rename = "fn")]
    pub function: Option<Spanned<String>>,
    pub steps: Option<Spanned<Vec<Spanned<RawStep>>>>,
    pub response: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariable {
    pub default: Option<Spanned<String>>,
    pub required: Option<Spanned<bool>>,
    pub secret: Option<Spanned<bool>>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpAuth {
    pub hosts: Spanned<Vec<Spanned<String>>>,
    pub headers: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
}

pub type SpannedList = Option<Spanned<Vec<Spanned<String>>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: Spanned<String>,
    pub version: Option<Spanned<String>>,
    pub description: Option<String>,
    pub base: Option<Spanned<String>>,
    pub hosts: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunction {
    pub source: Spanned<String>,
    pub abi: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub memory: Option<Spanned<String>>,
    pub max_concurrency: Option<Spanned<i64>>,
    pub max_queue: Option<Spanned<String>>,
    pub capabilities: SpannedList,
    pub allowed_hosts: SpannedList,
    pub kv_stores: SpannedList,
    pub secrets: SpannedList,
    pub publish_topics: SpannedList,
    pub queries: SpannedList,
    pub links: Option<Spanned<RawLinks>>,
    pub build: Option<Spanned<RawBuild>>,
}

/// `links = ["pricing"]` (the namespace is the function's name) or
/// `links = { "sample:namespace" = "pricing" }`.
#[derive(Debug)]
pub enum RawLinks {
    Names(Vec<Spanned<String>>),
    Routed(Vec<(Spanned<String>, Spanned<String>)>),
}

// By hand rather than `untagged`: an untagged enum buffers its input and
// loses the spans that errors point at.
impl<'de> Deserialize<'de> for RawLinks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Links;
        impl<'de> serde::de::Visitor<'de> for Links {
            type Value = RawLinks;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of function names, or a table of namespace = function")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawLinks, A::Error> {
                let mut names = Vec::new();
                while let Some(n) = seq.next_element()? {
                    names.push(n);
                }
                Ok(RawLinks::Names(names))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawLinks, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(RawLinks::Routed(pairs))
            }
        }
        d.deserialize_any(Links)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuild {
    pub command: Spanned<String>,
    pub workdir: Option<Spanned<String>>,
    #[serde(default)]
    pub watch: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMethods {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub method: Option<Spanned<RawMethods>>,
    pub path: Spanned<String>,
    /// Shorthand for a one-step route: `fn = "echo"`.
    #[serde(rename = "fn")]
    pub function: Option<Spanned<String>>,
    pub steps: Option<Spanned<Vec<Spanned<RawStep>>>>,
    pub response: Option<Spanned<String>>,
    pub max_body: Option<Spanned<String>>,
}

/// A step as written: a call (`fn`, ...) or a `group` of calls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    #[serde(rename = "fn")]
    pub function: Option<Spanned<String>>,
    pub op: Option<Spanned<String>>,
    #[serde(rename = "as")]
    pub as_key: Option<Spanned<String>>,
    pub with: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub input: Option<Spanned<String>>,
    /// Checked by hand for better messages than an untagged enum gives.
    pub on_error: Option<Spanned<toml::Value>>,
    pub group: Option<Spanned<Vec<Spanned<RawStep>>>>,
    pub timeout: Option<Spanned<String>>,
}
