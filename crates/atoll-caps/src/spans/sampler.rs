//! Which traces are recorded (exported): `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG`, as the OpenTelemetry SDKs read them. The
//! decision is taken once, where a request's trace is started or
//! continued ([`crate::trace::TraceContext`]), and travels in the sampled
//! flag: a trace sampled out still has its ids, in the logs and in the
//! `traceparent` sent on, with the flag cleared so services downstream that
//! follow their parent record nothing of it either.
//!
//! Set only with export on; until then (and by default) the sampler is
//! `parentbased_always_on`: a caller's flag is followed, the traces Atoll
//! starts are sampled.

use std::sync::OnceLock;

pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// A sampler of the specification's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// Whether a caller's sampled flag, when there is one, decides.
    parent_based: bool,
    /// The decision for a trace with no caller (or for every trace, when
    /// not parent-based).
    root: Root,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    On,
    Off,
    /// Sampled if the trace id's random low 63 bits are below this: a
    /// fraction of traces, the same decision in every service that uses
    /// the same rule on the same id.
    Ratio(u64),
}

impl Default for Sampler {
    fn default() -> Sampler {
        Sampler {
            parent_based: true,
            root: Root::On,
        }
    }
}

/// As the variables name it, for the start-up log line.
impl std::fmt::Display for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.parent_based {
            f.write_str("parentbased_")?;
        }
        match self.root {
            Root::On => f.write_str("always_on"),
            Root::Off => f.write_str("always_off"),
            Root::Ratio(below) => write!(f, "traceidratio {}", below as f64 / (1u64 << 63) as f64),
        }
    }
}

static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// Samples every trace from now on with `sampler`; only the first call
/// takes effect.
pub fn install(sampler: Sampler) -> bool {
    SAMPLER.set(sampler).is_ok()
}

/// Whether trace `trace_id` is sampled: `parent` is the caller's sampled
/// flag, if the trace came with the request.
pub fn sampled(trace_id: u128, parent: Option<bool>) -> bool {
    SAMPLER.get().copied().unwrap_or_default().decide(trace_id, parent)
}

impl Sampler {
    fn decide(self, trace_id: u128, parent: Option<bool>) -> bool {
        match (self.parent_based, parent) {
            (true, Some(sampled)) => sampled,
            _ => match self.root {
                Root::On => true,
                Root::Off => false,
                // As the Rust and Go SDKs read it: the id's low 8 bytes.
                Root::Ratio(below) => ((trace_id as u64) >> 1) < below,
            },
        }
    }

    /// The sampler the variables name (`sampler` being
    /// `OTEL_TRACES_SAMPLER`'s value and `arg` `OTEL_TRACES_SAMPLER_ARG`'s);
    /// unset or empty is the default. A name or ratio that cannot be read
    /// is an error naming the variable: sampling every trace, or none,
    /// when the operator asked for one in a hundred is no small surprise.
    pub fn from_variables(sampler: Option<&str>, arg: Option<&str>) -> Result<Sampler, String> {
        let name = sampler.map(str::trim).filter(|s| !s.is_empty());
        let Some(name) = name else {
            return Ok(Sampler::default());
        };
        let ratio = || -> Result<Root, String> {
            // The specification's default when no argument is given.
            let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
                return Ok(Root::Ratio(1 << 63));
            };
            let ratio: f64 = arg
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!("{OTEL_TRACES_SAMPLER_ARG}: {arg:?} is not a ratio between 0 and 1 (such as 0.25)")
                })?;
            Ok(Root::Ratio((ratio * (1u64 << 63) as f64) as u64))
        };
        let (parent_based, root) = match name.to_ascii_lowercase().as_str() {
            "always_on" => (false, Root::On),
            "always_off" => (false, Root::Off),
            "traceidratio" => (false, ratio()?),
            "parentbased_always_on" => (true, Root::On),
            "parentbased_always_off" => (true, Root::Off),
            "parentbased_traceidratio" => (true, ratio()?),
            other => {
                return Err(format!(
                    "{OTEL_TRACES_SAMPLER}: {other:?} is not a sampler Atoll has; use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                ));
            }
        };
        Ok(Sampler { parent_based, root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trace id whose low bits are `low`.
    fn id(low: u64) -> u128 {
        (0xabcd_u128 << 64) | u128::from(low)
    }

    #[test]
    fn each_sampler_decides_as_the_specification_says() {
        let s = |name: &str, arg: Option<&str>| Sampler::from_variables(Some(name), arg).unwrap();
        let (low, high) = (id(0), id(u64::MAX));
        for (sampler, root, parent_yes, parent_no) in [
            (s("always_on", None), true, true, true),
            (s("always_off", None), false, false, false),
            (s("parentbased_always_on", None), true, true, false),
            (s("parentbased_always_off", None), false, true, false),
            (Sampler::default(), true, true, false),
        ] {
            assert_eq!(sampler.decide(low, None), root, "{sampler:?}");
            assert_eq!(sampler.decide(low, Some(true)), parent_yes, "{sampler:?}");
            assert_eq!(sampler.decide(low, Some(false)), parent_no, "{sampler:?}");
        }
        let half = s("traceidratio", Some("0.5"));
        assert!(half.decide(low, None) && half.decide(low, Some(false)));
        assert!(
            !half.decide(high, None) && !half.decide(high, Some(true)),
            "the parent is not asked"
        );
        let parent_half = s("PARENTBASED_TRACEIDRATIO", Some(" 0.5 "));
        assert!(parent_half.decide(high, Some(true)) && !parent_half.decide(high, None));
        assert!(!s("traceidratio", Some("0")).decide(low, None));
        assert!(s("traceidratio", Some("1")).decide(high, None));
        assert!(s("traceidratio", None).decide(high, None), "no argument is 1.0");
        assert_eq!(parent_half.to_string(), "parentbased_traceidratio 0.5");
        assert_eq!(Sampler::default().to_string(), "parentbased_always_on");
        assert_eq!(Sampler::from_variables(Some(""), None).unwrap(), Sampler::default());
        assert_eq!(Sampler::from_variables(None, Some("0.1")).unwrap(), Sampler::default());
    }

    #[test]
    fn a_ratio_samples_about_that_fraction_of_random_ids() {
        let tenth = Sampler::from_variables(Some("traceidratio"), Some("0.1")).unwrap();
        let sampled = (0..100_000)
            .filter(|_| tenth.decide(crate::trace::TraceContext::start().trace_id_value(), None))
            .count();
        assert!((9_000..11_000).contains(&sampled), "{sampled} of 100000");
    }

    #[test]
    fn what_cannot_be_read_is_named() {
        let error = Sampler::from_variables(Some("jaeger_remote"), None).unwrap_err();
        assert!(error.starts_with("OTEL_TRACES_SAMPLER: \"jaeger_remote\""), "{error}");
        for arg in ["1.5", "-0.1", "half", "NaN"] {
            let error = Sampler::from_variables(Some("traceidratio"), Some(arg)).unwrap_err();
            assert!(error.starts_with("OTEL_TRACES_SAMPLER_ARG"), "{arg}: {error}");
        }
        // An argument only a ratio reads is ignored by the others.
        assert!(Sampler::from_variables(Some("always_on"), Some("half")).is_ok());
    }
}
