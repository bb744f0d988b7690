//! Property tests for every parser in this crate that reads untrusted input:
//! the manifest (as arbitrary text, as mutations of a valid one, and as
//! generated manifests full of plausible and implausible values), the runtime
//! configuration, durations, sizes, host patterns, topics, route paths and
//! header templates. A manifest comes from whoever deploys an app, and
//! `atoll check` must answer every one of them with a result or a located
//! error, never a panic; the properties say so, and also that whatever is
//! accepted is within the limits the rest of Atoll relies on (a timeout that
//! can be added to `Instant::now()`, a size that fits). Inputs are bounded
//! and case counts modest so the suite stays fast; a parser that hangs shows
//! up as this test never finishing.

use atoll_manifest::{
    HostPattern, MAX_DURATION, MAX_SIZE, MAX_TIMEOUT, MIN_MEMORY, Manifest, ManifestErrors, RoutePath,
    RuntimeConfigFile, SourceText, Template, TopicPattern, When, check_topic, parse_duration, parse_size,
};
use proptest::prelude::*;
use proptest::sample::select;
use std::path::Path;
use std::time::{Duration, Instant};

/// 256 cases per property, proptest's default; set `PROPTEST_CASES` for a
/// longer hunt.
fn config() -> ProptestConfig {
    ProptestConfig::default()
}

/// Any text at all, up to a few hundred characters of any script.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

/// Text made of the characters TOML is made of, so the parser gets past the
/// first byte and into tables, arrays and strings.
fn toml_ish(max: usize) -> impl Strategy<Value = String> {
    let chars = select(
        "[]{}=\".,#:*/-_ \n\n\tabcdefghijklmnopqrstuvwxyz0123456789'\\é"
            .chars()
            .collect::<Vec<_>>(),
    );
    proptest::collection::vec(chars, 0..max).prop_map(String::from_iter)
}

/// A TOML string literal holding `s`, whatever it contains.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Durations as people might write them, and as an adversary would: long
/// digit strings, fractions finer than a nanosecond, odd units.
fn duration_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => sane_duration(),
        2 => ("[0-9]{0,25}", proptest::option::of("[0-9]{0,25}"), select(vec!["us", "µs", "ms", "s", "m", "min", "h", "", " s", "d", "ns"]))
            .prop_map(|(whole, fraction, unit)| match fraction {
                Some(f) => format!("{whole}.{f}{unit}"),
                None => format!("{whole}{unit}"),
            }),
        1 => select(vec!["5s", "250ms", "1h", "2h", "8760h", "8761h", "0.0000000001us", "99999999999999999999999h", "100ms", "99ms", "0s"])
            .prop_map(str::to_string),
        1 => any_text(12),
    ]
    .boxed()
}

/// Valid as a timeout, a group's timeout and a schedule's period alike.
fn sane_duration() -> BoxedStrategy<String> {
    "[1-9][0-9]{0,2}s|[1-9][0-9]{2}ms".boxed()
}

/// Sizes likewise.
fn size_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => sane_size(),
        2 => ("[0-9]{0,25}", select(vec!["", "B", "KiB", "MiB", "GiB", "KB", "kB", "MB", "GB", "TiB", " MiB", "x"]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        1 => select(vec!["64MiB", "64KiB", "1KiB", "1024GiB", "1025GiB", "18446744073709551615", "0"]).prop_map(str::to_string),
        1 => any_text(12),
    ]
    .boxed()
}

/// Valid as a memory limit and a body limit alike.
fn sane_size() -> BoxedStrategy<String> {
    "[1-9][0-9]{0,2}MiB".boxed()
}

fn cron_text(sane: bool) -> BoxedStrategy<String> {
    let good = select(vec!["*/5 * * * *", "0 0 * * MON", "30 */5 * * * *", "0 12 1 JAN *"]).prop_map(str::to_string);
    if sane {
        return good.boxed();
    }
    let field = select(vec![
        "*", "*/5", "0", "59", "60", "61", "1-5", "5-1", "L", "W", "5W", "?", "MON", "jan", "7#5", "1,2,3", "*/0",
        "@daily", "+1", "-", "2030",
    ]);
    prop_oneof![
        3 => good,
        3 => proptest::collection::vec(field, 0..9).prop_map(|f| f.join(" ")),
        1 => any_text(20),
    ]
    .boxed()
}

fn host_text(sane: bool) -> BoxedStrategy<String> {
    let good = select(vec![
        "https://api.example.com",
        "http://localhost:*",
        "*://*.example.com:8443",
        "http://[::1]:8080",
    ])
    .prop_map(str::to_string);
    if sane {
        return good.boxed();
    }
    prop_oneof![
        4 => good,
        4 => (
            select(vec!["http://", "https://", "*://", "ftp://", "", "https:/"]),
            select(vec!["example.com", "*.example.com", "*", "a.*.com", "127.0.0.1", "[::1]", "[::1", "-bad-.com", "", "exa mple.com"]),
            select(vec!["", ":80", ":*", ":0", ":65536", ":x", "/", "/path", ":"]),
        )
            .prop_map(|(s, h, p)| format!("{s}{h}{p}")),
        1 => any_text(30),
    ]
    .boxed()
}

fn topic_text(sane: bool) -> BoxedStrategy<String> {
    let good = "[a-z]{1,6}(\\.([a-z]{1,6}|\\*))?(\\.>)?";
    if sane {
        return good.boxed();
    }
    prop_oneof![
        4 => good,
        4 => proptest::collection::vec(select(vec!["orders", "*", ">", "", "a b", "x*", "é"]), 0..5).prop_map(|t| t.join(".")),
        1 => any_text(20),
    ]
    .boxed()
}

fn path_text(sane: bool) -> BoxedStrategy<String> {
    let good = "(/[a-z]{1,5}){0,3}(/:[a-z]{1,3})?(/\\*rest)?";
    if sane {
        return good.boxed();
    }
    prop_oneof![
        4 => good,
        4 => proptest::collection::vec(select(vec!["users", ":id", ":id", "*rest", "", ":", "*", ":1x", "a:b", "{x}", "-", "é", "?q", "-"]), 0..5)
            .prop_map(|s| format!("/{}", s.join("/"))),
        1 => any_text(30),
    ]
    .boxed()
}

/// Names of functions and state entries: the sane ones are the functions
/// every sane manifest declares.
const FUNCTIONS: [&str; 4] = ["a", "b", "echo", "store"];

fn name_text(sane: bool) -> BoxedStrategy<String> {
    let good = select(FUNCTIONS.to_vec()).prop_map(str::to_string);
    if sane {
        return good.boxed();
    }
    prop_oneof![
        12 => good,
        1 => "[a-z_-]{0,3}[^a-z]?",
        1 => any_text(8),
    ]
    .boxed()
}

/// Checks what every manifest error must be: a message, a key or none, and a
/// location inside the text whose line and column agree with the span.
fn check_errors(errors: &ManifestErrors, text: &str) {
    assert!(!errors.0.is_empty(), "an error result holds at least one error");
    let lines = text.split('\n').count();
    for e in errors.iter() {
        assert!(!e.message.trim().is_empty(), "empty message: {e:?}");
        match e.location {
            Some(loc) => {
                assert!(
                    loc.start <= loc.end && loc.end <= text.len(),
                    "{loc:?} outside {} bytes",
                    text.len()
                );
                assert!((1..=lines).contains(&loc.line), "line {} of {lines}", loc.line);
                assert!(loc.column >= 1);
                let expected = naive_locate(text, loc.start);
                assert_eq!((loc.line, loc.column), expected, "for {e}");
            }
            // Only a problem with the whole file has no place in it.
            None => assert!(e.key.is_empty(), "unlocated error about a key: {e:?}"),
        }
    }
    // Rendering with the caret must not panic either.
    let shown = errors.to_string();
    assert!(shown.starts_with("error: "));
}

/// Line and column of byte `offset`, the slow obvious way.
fn naive_locate(text: &str, offset: usize) -> (usize, usize) {
    let mut boundary = offset.min(text.len());
    while !text.is_char_boundary(boundary) {
        boundary -= 1;
    }
    let before = &text[..boundary];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let mut column = before[line_start..].chars().count() + 1;
    if boundary < offset.min(text.len()) {
        // Inside a character: the column of the one after it.
        column += 1;
    }
    (line, column)
}

/// What an accepted manifest promises the rest of Atoll.
fn check_manifest(m: &Manifest) {
    let now = Instant::now();
    for f in m.functions.values() {
        assert!(
            f.timeout > Duration::ZERO && f.timeout <= MAX_TIMEOUT,
            "{:?}",
            f.timeout
        );
        assert!(now.checked_add(f.timeout).is_some());
        assert!((MIN_MEMORY..=MAX_SIZE).contains(&f.memory), "{}", f.memory);
    }
    for r in &m.routes {
        assert!(r.max_body.is_none_or(|b| (1..=MAX_SIZE).contains(&b)));
        for step in &r.pipeline.steps {
            if let atoll_manifest::Step::Group(g) = step {
                assert!(g.timeout.is_none_or(|t| t > Duration::ZERO && t <= MAX_DURATION));
            }
        }
    }
    for s in &m.schedules {
        match &s.when {
            When::Every(d) => {
                assert!(*d >= Duration::from_millis(100) && *d <= MAX_DURATION, "{d:?}");
                assert!(now.checked_add(*d).is_some());
            }
            When::Cron(expr) => {
                assert!((5..=6).contains(&expr.split_whitespace().count()), "{expr}");
                // The scheduler parses it again and relies on it parsing.
                assert!(expr.parse::<croner::Cron>().is_ok(), "{expr}");
            }
        }
    }
}

fn parse_manifest(text: &str) {
    match Manifest::parse(text, Path::new("atoll.toml")) {
        Ok(m) => check_manifest(&m),
        Err(e) => check_errors(&e, text),
    }
}

const VALID: &str = r#"[app]
name = "shop"

[variables]
token = { secret = true }

[functions.a]
source = "a.wasm"
timeout = "2s"
memory = "16MiB"
capabilities = ["http", "kv", "msg", "vars"]
allowed_hosts = ["https://api.example.com"]
publish_topics = ["orders.*"]
secrets = ["token"]

[functions.b]
source = "b.wasm"

[[http_auth]]
hosts = ["https://api.example.com"]
headers = { Authorization = "Bearer {{ secret.token }}" }

[[routes]]
method = ["GET", "POST"]
path = "/items/:id/*rest"
max_body = "1MiB"
steps = [{ group = [{ fn = "a" }, { fn = "b" }], timeout = "1s" }, { fn = "a", as = "out", with = { x = "b" }, on_error = { codes = { 404 = "continue" }, other = "return" } }]
response = "out"

[[schedules]]
name = "tick"
every = "30s"
state = { mode = "full" }
steps = [{ fn = "b", input = "mode" }]

[[schedules]]
cron = "*/5 * * * *"
fn = "a"

[[subscriptions]]
topic = "orders.>"
reply_to = "done"
fn = "b"
"#;

/// One edit of a text: replace the characters in a range with other text.
fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    let len = text.chars().count();
    (
        0..=len,
        0..8usize,
        prop_oneof![toml_ish(12), any_text(6), duration_text(), size_text()],
    )
        .prop_map(move |(at, cut, insert)| {
            let chars: Vec<char> = text.chars().collect();
            let end = (at + cut).min(chars.len());
            chars[..at]
                .iter()
                .chain(insert.chars().collect::<Vec<_>>().iter())
                .chain(chars[end..].iter())
                .collect()
        })
}

/// A manifest put together from generated parts, as well-formed TOML. With
/// `sane` every value is one validation accepts, so what gets exercised is
/// how valid parts combine (and what an accepted manifest promises); without
/// it, values range from sensible to hostile, so every check is reached.
fn generated_manifest(sane: bool) -> impl Strategy<Value = String> {
    let duration = move || if sane { sane_duration() } else { duration_text() };
    let size = move || if sane { sane_size() } else { size_text() };
    let capabilities = if sane {
        proptest::sample::subsequence(vec!["http", "kv", "msg", "vars", "log"], 0..3).boxed()
    } else {
        proptest::collection::vec(
            select(vec!["http", "kv", "msg", "vars", "log", "log", "kv", "bogus"]),
            0..3,
        )
        .boxed()
    };
    // Lists go with their capability, except now and then, to reach both
    // the grant checks and what lies behind them.
    let function = (
        proptest::option::of(duration()),
        proptest::option::of(size()),
        capabilities,
        proptest::collection::vec(host_text(sane), 0..3),
        proptest::collection::vec(topic_text(sane), 0..3),
        proptest::bool::weighted(if sane { 0.0 } else { 0.1 }),
    )
        .prop_map(|(timeout, memory, caps, hosts, topics, mismatch)| {
            let mut t = String::new();
            if let Some(d) = timeout {
                t += &format!("timeout = {}\n", quoted(&d));
            }
            if let Some(m) = memory {
                t += &format!("memory = {}\n", quoted(&m));
            }
            let list = |items: &[String]| items.iter().map(|i| quoted(i)).collect::<Vec<_>>().join(", ");
            let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
            t += &format!("capabilities = [{}]\n", list(&caps));
            if caps.iter().any(|c| c == "http") != mismatch {
                t += &format!("allowed_hosts = [{}]\n", list(&hosts));
            }
            if caps.iter().any(|c| c == "msg") != mismatch {
                t += &format!("publish_topics = [{}]\n", list(&topics));
            }
            t
        });
    let names = if sane {
        Just(FUNCTIONS.iter().map(|f| f.to_string()).collect::<Vec<_>>()).boxed()
    } else {
        proptest::collection::btree_set(name_text(false), 0..4)
            .prop_map(|n| n.into_iter().collect())
            .boxed()
    };
    let functions = names
        .prop_flat_map(move |names| {
            proptest::collection::vec(function.clone(), names.len()).prop_map(move |bodies| (names.clone(), bodies))
        })
        .prop_map(|(names, bodies)| {
            names
                .iter()
                .zip(bodies)
                .map(|(name, body)| format!("[functions.{}]\nsource = \"f.wasm\"\n{body}", quoted(name)))
                .collect::<Vec<_>>()
        });
    let call = (name_text(sane), proptest::option::of("[a-z]{1,3}"))
        .prop_map(|(f, alias)| match alias {
            Some(a) => format!("{{ fn = {}, as = {} }}", quoted(&f), quoted(&a)),
            None => format!("{{ fn = {} }}", quoted(&f)),
        })
        .boxed();
    let step = prop_oneof![
        3 => call.clone(),
        1 => (proptest::collection::vec(call.clone(), usize::from(sane)..3), proptest::option::of(duration())).prop_map(|(members, timeout)| {
            let timeout = timeout.map_or(String::new(), |t| format!(", timeout = {}", quoted(&t)));
            format!("{{ group = [{}]{timeout} }}", members.join(", "))
        }),
    ];
    // A sane pipeline ends with a call, so which output is the response is
    // never ambiguous.
    let steps = (proptest::collection::vec(step, usize::from(!sane)..3), call).prop_map(move |(mut steps, last)| {
        if sane {
            steps.push(last);
        }
        steps.join(", ")
    });
    let methods = if sane {
        select(vec!["GET", "POST", "ANY", "get", "DELETE"])
    } else {
        select(vec!["GET", "POST", "ANY", "get", "DELETE", "BAD METHOD", ""])
    };
    let route =
        (methods, path_text(sane), steps, proptest::option::of(size())).prop_map(|(method, path, steps, max_body)| {
            let mut t = format!(
                "[[routes]]\nmethod = \"{method}\"\npath = {}\nsteps = [{steps}]\n",
                quoted(&path)
            );
            if let Some(b) = max_body {
                t += &format!("max_body = {}\n", quoted(&b));
            }
            t
        });
    let schedule = (
        prop_oneof![
            duration().prop_map(|d| ("every", d)),
            cron_text(sane).prop_map(|c| ("cron", c))
        ],
        name_text(sane),
    )
        .prop_map(|((key, value), f)| format!("[[schedules]]\n{key} = {}\nfn = {}\n", quoted(&value), quoted(&f)));
    let subscription = (
        topic_text(sane),
        proptest::option::of("[a-z]{1,6}\\.reply"),
        name_text(sane),
    )
        .prop_map(|(topic, reply, f)| {
            let reply = reply.map_or(String::new(), |r| format!("reply_to = {}\n", quoted(&r)));
            format!(
                "[[subscriptions]]\ntopic = {}\n{reply}fn = {}\n",
                quoted(&topic),
                quoted(&f)
            )
        });
    let app = if sane {
        Just("shop".to_string()).boxed()
    } else {
        prop_oneof![4 => Just("shop".to_string()), 1 => name_text(false)].boxed()
    };
    (
        app,
        functions,
        proptest::collection::vec(route, 0..4),
        proptest::collection::vec(schedule, 0..3),
        proptest::collection::vec(subscription, 0..2),
    )
        .prop_map(|(app, functions, routes, schedules, subscriptions)| {
            let mut t = format!("[app]\nname = {}\n\n", quoted(&app));
            for part in functions.iter().chain(&routes).chain(&schedules).chain(&subscriptions) {
                t += part;
                t.push('\n');
            }
            t
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn durations_are_in_range_or_refused(text in duration_text()) {
        match parse_duration(&text) {
            Ok(d) => prop_assert!(d >= Duration::from_nanos(1) && d <= MAX_DURATION, "{text} -> {d:?}"),
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn whole_durations_parse_exactly(n in 0u64..=u64::MAX, unit in select(vec![("us", 1_000u128), ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)])) {
        let nanos = u128::from(n) * unit.1;
        let text = format!("{n}{}", unit.0);
        match parse_duration(&text) {
            Ok(d) => prop_assert_eq!(d.as_nanos(), nanos),
            Err(e) if n == 0 => prop_assert!(e.contains("greater than zero")),
            Err(e) => prop_assert!(nanos > MAX_DURATION.as_nanos() && e.contains("8760h"), "{text}: {e}"),
        }
    }

    #[test]
    fn sizes_are_in_range_or_refused(text in size_text()) {
        match parse_size(&text) {
            Ok(bytes) => prop_assert!((1..=MAX_SIZE).contains(&bytes), "{text} -> {bytes}"),
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn whole_sizes_parse_exactly(n in 0u64..=u64::MAX, unit in select(vec![("", 1u64), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("MB", 1_000_000)])) {
        let text = format!("{n}{}", unit.0);
        match (parse_size(&text), n.checked_mul(unit.1)) {
            (Ok(bytes), Some(expected)) => prop_assert_eq!(bytes, expected),
            (Err(_), Some(0)) => {}
            (Err(e), Some(b)) => prop_assert!(b > MAX_SIZE && e.contains("1TiB"), "{text}: {e}"),
            (Err(e), None) => prop_assert!(e.contains("1TiB"), "{text}: {e}"),
            (Ok(bytes), None) => prop_assert!(false, "{text} overflowed yet gave {bytes}"),
        }
    }

    #[test]
    fn host_patterns_round_trip_and_match_without_panicking(text in host_text(false), scheme in select(vec!["http", "https", ""]), host in any_text(20), port in any::<u16>()) {
        match HostPattern::parse(&text) {
            Ok(p) => {
                prop_assert_eq!(HostPattern::parse(&p.to_string()), Ok(p.clone()));
                p.matches(scheme, &host, port);
                p.is_explicit_host();
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn topics_agree_with_patterns(text in topic_text(false), subject in topic_text(false)) {
        let concrete = check_topic(&text);
        match TopicPattern::parse(&text) {
            Ok(p) => {
                prop_assert_eq!(p.as_str(), text.as_str());
                if concrete.is_ok() {
                    prop_assert!(p.matches(&text), "a topic matches itself");
                }
                p.matches(&subject);
            }
            Err(e) => {
                prop_assert!(!e.is_empty());
                prop_assert!(concrete.is_err(), "a valid topic is a valid pattern");
            }
        }
    }

    #[test]
    fn route_paths_round_trip(text in path_text(false)) {
        match RoutePath::parse(&text) {
            Ok(p) => {
                prop_assert_eq!(RoutePath::parse(&p.to_string()), Ok(p.clone()));
                prop_assert!(p.shape().starts_with('/'));
                prop_assert!(p.to_matchit().starts_with('/'));
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn templates_round_trip(text in prop_oneof![any_text(40), "[a-z {}.]{0,40}", "(Bearer )?\\{\\{ ?(var|secret|env)\\.[a-z]{0,5} ?\\}\\}[a-z}]{0,3}"]) {
        match Template::parse(&text) {
            Ok(t) => {
                prop_assert_eq!(Template::parse(&t.to_string()), Ok(t.clone()));
                let _ = t.render(|n| (!n.is_empty()).then(|| n.to_uppercase()));
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn locating_a_span_agrees_with_counting_lines(text in prop_oneof![any_text(600), "([a-zé€\r]{0,300}\n){0,4}"], start in any::<usize>(), len in 0usize..20) {
        let src = SourceText::new(Path::new("x.toml"), &text);
        let start = start % (text.len() + 2);
        let loc = src.locate(start..start.saturating_add(len));
        prop_assert_eq!((loc.line, loc.column), naive_locate(&text, start));
        prop_assert!(loc.start <= loc.end && loc.end <= text.len());
        let shown = src.error(loc, "k", "m").to_string();
        prop_assert!(shown.contains('^'));
    }

    #[test]
    fn arbitrary_text_never_panics_the_manifest_parser(text in prop_oneof![any_text(300), toml_ish(300)]) {
        parse_manifest(&text);
    }

    #[test]
    fn one_edit_to_a_valid_manifest_never_panics(text in mutated(VALID)) {
        parse_manifest(&text);
    }

    #[test]
    fn generated_manifests_load_or_say_where_they_are_wrong(text in generated_manifest(false)) {
        parse_manifest(&text);
    }

    #[test]
    fn sane_generated_manifests_keep_their_promises(text in generated_manifest(true)) {
        parse_manifest(&text);
    }

    #[test]
    fn runtime_configuration_loads_or_says_where_it_is_wrong(
        text in prop_oneof![
            any_text(200),
            toml_ish(200),
            (duration_text(), size_text(), select(vec!["redb", "memory", "redis", "mongo"]), any_text(20), 0u64..10_000_000_000)
                .prop_map(|(timeout, size, backend, url, redirects)| format!(
                    "data_dir = \"state\"\n[kv.default]\nbackend = \"{backend}\"\nurl = {}\n[http]\ntimeout = {}\nmax_response = {}\nmax_redirects = {redirects}\n",
                    quoted(&url), quoted(&timeout), quoted(&size)
                )),
        ]
    ) {
        match RuntimeConfigFile::parse(&text, Path::new("runtime.toml")) {
            Ok(cfg) => {
                prop_assert!(cfg.http.timeout > Duration::ZERO && cfg.http.timeout <= MAX_DURATION);
                prop_assert!(Instant::now().checked_add(cfg.http.timeout).is_some());
                prop_assert!((1..=MAX_SIZE).contains(&cfg.http.max_response));
            }
            Err(e) => check_errors(&e, &text),
        }
    }
}

#[test]
fn the_valid_manifest_used_for_mutations_is_valid() {
    let m = Manifest::parse(VALID, Path::new("atoll.toml")).unwrap();
    check_manifest(&m);
}
