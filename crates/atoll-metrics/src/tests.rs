//! What the registry renders: recorded series in the text format, labels
//! folded to bounded values, the instance gauge back to zero when its
//! guards are dropped.

use super::*;

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

#[test]
fn recordings_appear_in_the_text_format_with_bounded_labels() {
    http_request("shop", "/t/{id}", "GET", 204, Duration::from_micros(30));
    http_request("shop", "/t/{id}", "GET", 201, Duration::from_micros(30));
    http_request("shop", "/t/{id}", "BREW", 418, Duration::from_millis(2));
    invocation(
        "shop",
        "tf",
        "wapc",
        InvocationOutcome::Timeout,
        Duration::from_millis(5),
    );
    host_call("kv", HostCallOutcome::Refused, Duration::from_micros(3));
    {
        let _a = instance_in_use();
        let _b = instance_in_use();
        assert!(render().contains("atoll_instances_in_use 2"), "{}", render());
    }
    let text = render();
    assert_eq!(
        sample(
            &text,
            r#"atoll_http_requests_total{app="shop",method="GET",route="/t/{id}",status="2xx"}"#
        ),
        Some(2.0)
    );
    // An unknown method is one series, whatever the client sends.
    assert_eq!(
        sample(
            &text,
            r#"atoll_http_requests_total{app="shop",method="other",route="/t/{id}",status="4xx"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"atoll_http_request_duration_seconds_count{app="shop",route="/t/{id}"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"atoll_invocations_total{abi="wapc",app="shop",function="tf",outcome="timeout"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"atoll_host_calls_total{namespace="kv",outcome="refused"}"#),
        Some(1.0)
    );
    assert!(text.contains("atoll_instances_in_use 0"), "{text}");
}

#[test]
fn a_removed_apps_series_are_forgotten_and_the_others_kept() {
    http_request("gone", "/x", "GET", 200, Duration::from_micros(30));
    invocation("gone", "f", "wapc", InvocationOutcome::Ok, Duration::from_micros(5));
    schedule_run("gone", "tick", true);
    function_slots("gone", "f", 4);
    http_request("kept", "/x", "GET", 200, Duration::from_micros(30));
    invocation("kept", "f", "wapc", InvocationOutcome::Ok, Duration::from_micros(5));
    assert!(render().contains(r#"app="gone""#));

    forget_app("gone");
    let text = render();
    assert!(!text.contains(r#"app="gone""#), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"atoll_invocations_total{abi="wapc",app="kept",function="f",outcome="ok"}"#
        ),
        Some(1.0)
    );
    assert!(
        text.contains(r#"atoll_http_request_duration_seconds_count{app="kept",route="/x"}"#),
        "{text}"
    );
}
