//! Credentials masked out of the source lines quoted under errors.
//!
//! An error about a database or broker URL quotes its line, and a URL may
//! carry a password (`postgres://app:s3cret@db/app`). Error output goes to
//! terminals, CI logs and log collectors, so the password never does: it is
//! replaced by [`MASK`] wherever it appears in a quoted line, as a URL's
//! userinfo or as a `password=` or `pass=` parameter (libpq's key-value form, or a
//! query string).

/// What a password is shown as.
pub(crate) const MASK: &str = "***";

/// `text[from..to]` with the passwords of `secrets` (from
/// [`secret_ranges`] over all of `text`) masked, even where the window cuts
/// one, and the byte offset `caret` as a character offset into the result:
/// a caret inside a password goes to the start of its mask.
pub(crate) fn mask(
    text: &str,
    (from, to): (usize, usize),
    caret: usize,
    secrets: &[(usize, usize)],
) -> (String, usize) {
    let first = secrets.partition_point(|&(_, end)| end <= from);
    let mut out = String::with_capacity(to - from);
    let mut new_caret = None;
    let mut at = from;
    for &(start, end) in secrets[first..].iter().take_while(|&&(start, _)| start < to) {
        let (start, end) = (start.max(from), end.min(to));
        if new_caret.is_none() && caret < start {
            new_caret = Some(out.chars().count() + text[at..caret.max(at)].chars().count());
        }
        out.push_str(&text[at..start]);
        if new_caret.is_none() && caret < end {
            new_caret = Some(out.chars().count());
        }
        out.push_str(MASK);
        at = end;
    }
    let caret = new_caret.unwrap_or_else(|| out.chars().count() + text[at..caret.clamp(at, to)].chars().count());
    out.push_str(&text[at..to]);
    (out, caret)
}

/// `text` (a backend URL, say) fit for a log or an error message: every
/// password in it replaced by `***`.
pub fn without_password(text: &str) -> String {
    mask(text, (0, text.len()), 0, &secret_ranges(text)).0
}

/// The byte ranges of passwords in `text`, in order, not overlapping: one
/// pass over a whole manifest, so quoting a line stays cheap however many
/// errors point into it.
pub(crate) fn secret_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut ranges = userinfo_passwords(text);
    ranges.extend(password_parameters(text));
    merged(ranges)
}

/// `ranges` in order, overlapping ones joined into one, as [`mask`] takes
/// them.
pub(crate) fn merged(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    ranges.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start < last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// The values in a runtime configuration's `[variables]` and
/// `[apps.NAME.variables]` tables: each may be a secret's, and nothing in
/// the file says which. A value is masked from after its `=` to the end of
/// its line.
pub(crate) fn variable_values(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut in_variables = false;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        if let Some(header) = trimmed.strip_prefix('[') {
            let name = header.split(']').next().unwrap_or("").trim();
            in_variables = name == "variables" || (name.starts_with("apps.") && name.ends_with(".variables"));
            continue;
        }
        if !in_variables || trimmed.starts_with('#') {
            continue;
        }
        let Some(eq) = body.find('=') else { continue };
        let value = &body[eq + 1..];
        let lead = value.len() - value.trim_start().len();
        let value_end = body.trim_end().len();
        if eq + 1 + lead < value_end {
            found.push((start + eq + 1 + lead, start + value_end));
        }
    }
    found
}

/// Where a URL ends: its authority cannot hold these either.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ']' | '}' | '`')
}

/// `scheme://user:PASSWORD@host`: the password of each URL's userinfo,
/// and all of it for `redis://SECRET@host`, which Redis clients read as a
/// password.
fn userinfo_passwords(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(rel) = text[from..].find("://") {
        let scheme_end = from + rel;
        let authority_start = scheme_end + 3;
        let scheme_start = text[..scheme_end]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let rest = &text[authority_start..];
        let url_len = rest.find(ends_url).unwrap_or(rest.len());
        let url = &rest[..url_len];
        let authority_len = url.find(['/', '?', '#']).unwrap_or(url.len());
        let authority = &url[..authority_len];
        if let Some(at) = authority.rfind('@') {
            match authority[..at].find(':') {
                Some(colon) if colon + 1 < at => found.push((authority_start + colon + 1, authority_start + at)),
                Some(_) => {}
                None if at > 0 && matches!(&text[scheme_start..scheme_end], "redis" | "rediss") => {
                    found.push((authority_start, authority_start + at));
                }
                None => {}
            }
        }
        from = authority_start;
    }
    found
}

/// `password=VALUE`, `sslpassword=VALUE` and `pass=VALUE` (any case,
/// spaces around `=` allowed), as in a libpq connection string or a query
/// string; a quoted value is masked inside its quotes.
fn password_parameters(text: &str) -> Vec<(usize, usize)> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(rel) = lower[from..].find("pass") {
        let hit = from + rel;
        let word_start = lower[..hit].rfind(|c: char| !is_word(c)).map_or(0, |i| i + 1);
        let word_end = lower[hit..].find(|c: char| !is_word(c)).map_or(text.len(), |i| hit + i);
        from = word_end.max(hit + 1);
        if !matches!(&lower[word_start..word_end], "pass" | "password" | "sslpassword") {
            continue;
        }
        let rest = &text[word_end..];
        let after_spaces = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let Some(value) = rest[after_spaces..].strip_prefix('=') else {
            continue;
        };
        let value_start = text.len() - value.trim_start_matches([' ', '\t']).len();
        let value = &text[value_start..];
        let (start, len) = match value.chars().next() {
            Some(q @ ('"' | '\'')) => (value_start + 1, value[1..].find(q).unwrap_or(value.len() - 1)),
            _ => (
                value_start,
                value
                    .find(|c: char| c.is_whitespace() || matches!(c, '&' | ';' | '"' | '\'' | ','))
                    .unwrap_or(value.len()),
            ),
        };
        if len > 0 {
            found.push((start, start + len));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(line: &str, caret: usize) -> (String, usize) {
        let caret = line.char_indices().nth(caret).map_or(line.len(), |(i, _)| i);
        mask(line, (0, line.len()), caret, &secret_ranges(line))
    }

    fn masked(line: &str) -> String {
        redact(line, 0).0
    }

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(
            masked(r#"url = "postgres://app:s3cret@127.0.0.1:5432/app?sslmode=require""#),
            r#"url = "postgres://app:***@127.0.0.1:5432/app?sslmode=require""#
        );
        assert_eq!(
            masked(r#"url = "redis://:hunter2@cache:6379/0""#),
            r#"url = "redis://:***@cache:6379/0""#
        );
        // An `@` or `:` in the path is not userinfo.
        assert_eq!(
            masked("url = \"nats://host:4222/a:b@c\""),
            "url = \"nats://host:4222/a:b@c\""
        );
        // A user without a password has nothing to hide, but Redis reads
        // a lone userinfo as the password.
        assert_eq!(
            masked("url = \"postgres://app@db/app\""),
            "url = \"postgres://app@db/app\""
        );
        assert_eq!(masked("url = \"rediss://s3cret@db/1\""), "url = \"rediss://***@db/1\"");
        // A password holding `@` (percent-encoding forgotten): all of it up to the last `@`.
        assert_eq!(masked("u = 'postgres://a:p@ss@db/x'"), "u = 'postgres://a:***@db/x'");
    }

    #[test]
    fn password_parameters_are_masked() {
        assert_eq!(
            masked(r#"url = "host=db user=app password=s3cret dbname=app""#),
            r#"url = "host=db user=app password=*** dbname=app""#
        );
        assert_eq!(
            masked(r#"url = "postgres://db/app?user=app&Password=s3cret&sslmode=require""#),
            r#"url = "postgres://db/app?user=app&Password=***&sslmode=require""#
        );
        assert_eq!(masked(r#"password = "s3cret""#), r#"password = "***""#);
        assert_eq!(masked("sslpassword='k3y' host=db"), "sslpassword='***' host=db");
        assert_eq!(
            masked(r#"url = "unix:///run/redis.sock?db=1&pass=s3cret""#),
            r#"url = "unix:///run/redis.sock?db=1&pass=***""#
        );
        // Other words holding "pass" are not keys of a password.
        assert_eq!(masked("bypass=1 passes=2"), "bypass=1 passes=2");
        // The word alone, as a name, is not a secret.
        assert_eq!(
            masked(r#"secrets = ["greeting", "password", "token"]"#),
            r#"secrets = ["greeting", "password", "token"]"#
        );
    }

    #[test]
    fn the_caret_stays_under_the_same_text() {
        let line = r#"url = "postgres://app:a-long-password@db/app?sslrootcert=ca.pem""#;
        let at = |s: &str, needle: &str| s[..s.find(needle).unwrap()].chars().count();
        // After the password: moved left by what the mask saved.
        let (out, caret) = redact(line, at(line, "sslrootcert"));
        assert_eq!(caret, at(&out, "sslrootcert"));
        // Before it: unchanged.
        let (out, caret) = redact(line, at(line, "url"));
        assert_eq!((caret, &out[..3]), (0, "url"));
        // Inside it: the start of the mask.
        let (out, caret) = redact(line, at(line, "long"));
        assert_eq!(caret, at(&out, MASK));
        // Past the end of the line (a span at its end).
        let (out, caret) = redact(line, line.chars().count());
        assert_eq!(caret, out.chars().count());
    }

    #[test]
    fn non_ascii_text_keeps_its_columns() {
        let line = "url = \"postgres://é:pässwörd@db/ü\" # café";
        let (out, caret) = redact(line, line.chars().count() - 4);
        assert_eq!(out, "url = \"postgres://é:***@db/ü\" # café");
        assert_eq!(out.chars().skip(caret).collect::<String>(), "café");
    }
}

#[cfg(test)]
mod urls {
    use super::without_password;

    #[test]
    fn backend_urls_lose_their_passwords() {
        let cases = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://app:s3cret@db:6379/0", "redis://app:***@db:6379/0"),
            ("redis://:s3cret@db", "redis://:***@db"),
            ("rediss://s3cret@db/1", "rediss://***@db/1"),
            (
                "unix:///run/redis.sock?db=1&pass=s3cret",
                "unix:///run/redis.sock?db=1&pass=***",
            ),
            ("redis://db/0?password=s3cret", "redis://db/0?password=***"),
            (
                "nats://u:p@n1:4222,nats://u:p@n2:4222",
                "nats://u:***@n1:4222,nats://u:***@n2:4222",
            ),
        ];
        for (url, logged) in cases {
            assert_eq!(without_password(url), logged, "{url}");
        }
    }
}

#[cfg(test)]
mod variables {
    use super::*;

    fn masked(text: &str) -> String {
        mask(text, (0, text.len()), 0, &merged(variable_values(text))).0
    }

    #[test]
    fn overlapping_ranges_are_joined_not_dropped() {
        assert_eq!(merged(vec![(5, 9), (0, 6), (12, 14), (8, 10)]), [(0, 10), (12, 14)]);
    }

    #[test]
    fn values_under_variables_tables_are_masked_and_nothing_else() {
        let text = "data_dir = \"state\"\n[variables]\ntoken = \"s3cret\"  \n# a comment = kept\n\n[apps.shop.variables]\npin = 1234\n[kv.default]\nbackend = \"redb\"\n";
        assert_eq!(
            masked(text),
            "data_dir = \"state\"\n[variables]\ntoken = ***  \n# a comment = kept\n\n[apps.shop.variables]\npin = ***\n[kv.default]\nbackend = \"redb\"\n"
        );
        // CRLF line ends, and a value left empty (an error of its own).
        assert_eq!(
            masked("[variables]\r\na = \"x\"\r\nb =\r\n"),
            "[variables]\r\na = ***\r\nb =\r\n"
        );
    }
}

#[cfg(test)]
mod windows {
    use super::*;

    #[test]
    fn a_window_that_cuts_a_password_masks_what_it_shows() {
        let text = "x = 1\nurl = \"postgres://app:0123456789@db/app\"\n";
        let secrets = secret_ranges(text);
        let cut = text.find("456").unwrap();
        let (out, caret) = mask(text, (cut, text.find("@db").unwrap() + 3), cut, &secrets);
        assert_eq!((out.as_str(), caret), ("***@db", 0));
    }
}
