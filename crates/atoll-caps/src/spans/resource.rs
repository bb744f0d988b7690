//! The resource of the exported spans: what Atoll knows of itself and the
//! app, then the standard variables an operator sets on every service,
//! `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`, which win over it.
//!
//! The SDK's own detector is not used: it neither percent-decodes values
//! nor says anything about an entry it cannot read. A malformed variable is
//! refused at start, naming the entry: the specification would have it
//! discarded with a warning, but spans sent under the wrong service or
//! without the attributes an operator's dashboards select on are lost just
//! as surely, and found much later than a server that does not start.

use super::otlp::Service;

pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// The resource's attributes, in order, each key once: Atoll's, then those
/// of the variables (`service_name` being `OTEL_SERVICE_NAME`'s value and
/// `attributes` `OTEL_RESOURCE_ATTRIBUTES`'s), a later one replacing an
/// earlier one of the same key.
pub fn attributes(
    service: &Service,
    service_name: Option<&str>,
    attributes: Option<&str>,
) -> Result<Vec<(String, String)>, String> {
    let mut all = vec![
        ("service.name".to_string(), service.name.clone()),
        ("atoll.version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("atoll.apps".to_string(), service.apps.join(",")),
    ];
    if let Some(version) = &service.version {
        all.push(("service.version".into(), version.clone()));
    }
    if let Some(text) = attributes {
        all.extend(parse(text).map_err(|e| format!("{OTEL_RESOURCE_ATTRIBUTES}: {e}"))?);
    }
    // Empty is unset, as for every OTEL_* variable.
    if let Some(name) = service_name.filter(|n| !n.trim().is_empty()) {
        all.push(("service.name".into(), name.trim().to_string()));
    }
    let mut deduplicated: Vec<(String, String)> = Vec::with_capacity(all.len());
    for (key, value) in all {
        match deduplicated.iter_mut().find(|(k, _)| *k == key) {
            Some(kept) => kept.1 = value,
            None => deduplicated.push((key, value)),
        }
    }
    Ok(deduplicated)
}

/// `key1=value1,key2=value2`, the W3C Baggage format without properties:
/// space around keys and values is dropped, values are percent-decoded
/// (`,` and `=` in a value must be written `%2C` and `%3D`), an empty
/// entry (a trailing comma) is skipped. The first entry that is not
/// `key=value`, has an empty key, or whose value does not decode to UTF-8
/// is the error, named with its place.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut parsed = Vec::new();
    for (i, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let place = format!("entry {} ({:?})", i + 1, entry.trim());
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| format!("{place} is not key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("{place} has no key"));
        }
        if let Some(bad) = key.chars().find(|c| c.is_whitespace() || c.is_control() || *c == ';') {
            return Err(format!("{place}: the key may not contain {bad:?}"));
        }
        let value = value.trim();
        if let Some(bad) = bad_escape(value) {
            return Err(format!(
                "{place}: {bad:?} is not a percent-escape (write a literal % as %25)"
            ));
        }
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| format!("{place}: the value does not decode to UTF-8"))?;
        parsed.push((key.to_string(), decoded.into_owned()));
    }
    Ok(parsed)
}

/// The first `%` not followed by two hex digits, with what follows it:
/// `percent_decode` would keep it as it is, silently.
fn bad_escape(value: &str) -> Option<&str> {
    let bytes = value.as_bytes();
    let at = bytes.iter().enumerate().position(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })?;
    let end = value[at..].char_indices().nth(3).map_or(value.len(), |(n, _)| at + n);
    Some(&value[at..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        Service {
            name: "shop".into(),
            version: Some("1.0".into()),
            apps: vec!["shop".into()],
        }
    }

    fn get<'a>(attributes: &'a [(String, String)], key: &str) -> Option<&'a str> {
        attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn values_are_percent_decoded_and_space_around_them_dropped() {
        let parsed = parse(" deployment.environment.name = prod ,team=a%2Cb%3Dc,note=caf%C3%A9 ok,").unwrap();
        assert_eq!(
            parsed,
            [
                ("deployment.environment.name".into(), "prod".into()),
                ("team".into(), "a,b=c".into()),
                ("note".into(), "café ok".into()),
            ]
        );
        assert_eq!(parse("").unwrap(), []);
        assert_eq!(parse("k=").unwrap(), [("k".into(), String::new())]);
        assert_eq!(
            parse("k=a=b").unwrap(),
            [("k".into(), "a=b".into())],
            "the first = splits"
        );
    }

    #[test]
    fn a_malformed_entry_is_named_with_its_place() {
        for (text, words) in [
            ("a=1,oops,b=2", "entry 2 (\"oops\") is not key=value"),
            ("a=1,=2", "entry 2 (\"=2\") has no key"),
            ("a b=1", "may not contain ' '"),
            ("k=100%", "\"%\" is not a percent-escape"),
            ("k=%zz1", "\"%zz\" is not a percent-escape"),
            ("k=%FF", "does not decode to UTF-8"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(words), "{text}: {error}");
        }
    }

    #[test]
    fn the_variables_win_over_what_atoll_derives() {
        let plain = attributes(&service(), None, None).unwrap();
        assert_eq!(get(&plain, "service.name"), Some("shop"));
        assert_eq!(get(&plain, "service.version"), Some("1.0"));
        assert_eq!(get(&plain, "atoll.apps"), Some("shop"));

        let set = attributes(
            &service(),
            None,
            Some("service.name=from-attrs,service.version=2.0,region=eu"),
        )
        .unwrap();
        assert_eq!(get(&set, "service.name"), Some("from-attrs"));
        assert_eq!(get(&set, "service.version"), Some("2.0"));
        assert_eq!(get(&set, "region"), Some("eu"));
        assert_eq!(set.iter().filter(|(k, _)| k == "service.name").count(), 1);

        let named = attributes(&service(), Some("checkout"), Some("service.name=from-attrs")).unwrap();
        assert_eq!(get(&named, "service.name"), Some("checkout"), "OTEL_SERVICE_NAME wins");
        let empty = attributes(&service(), Some(" "), None).unwrap();
        assert_eq!(get(&empty, "service.name"), Some("shop"), "empty is unset");

        let error = attributes(&service(), None, Some("a=1,b")).unwrap_err();
        assert!(error.starts_with("OTEL_RESOURCE_ATTRIBUTES: entry 2"), "{error}");
    }

    proptest::proptest! {
        /// Whatever the variable holds, parsing answers; a value encoded as
        /// the specification says comes back as it was.
        #[test]
        fn any_text_parses_or_is_refused_and_encoded_values_round_trip(text in "\\PC{0,60}", value in "\\PC{0,30}") {
            let _ = parse(&text);
            const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'.').remove(b'-');
            let encoded = percent_encoding::utf8_percent_encode(&value, SET).to_string();
            let parsed = parse(&format!("k={encoded}")).unwrap();
            proptest::prop_assert_eq!(&parsed[0].1, &value);
        }
    }
}
