//! Random `--set` keys and values and random flag combinations, through the binary: never a
//! panic, always an exit status of the contract (0, 1, 2 or 3), and bad input always one line.

use crate::common::mqcheck;
use mqcheck_brokers::config::Allowed;
use mqcheck_brokers::{dispatch, Job, System, BROKERS};
use proptest::prelude::*;

/// A broker's keys, each with the values to try.
type KeyValues = Vec<(String, Vec<String>)>;

/// Each key of a broker with values to try: every allowed word or the range's ends, and values
/// just outside what it allows.
struct Values;

impl Job for Values {
    type Output = KeyValues;
    fn run<S: System>(self) -> Self::Output {
        S::keys()
            .iter()
            .map(|k| {
                let mut values: Vec<String> = match &k.allowed {
                    Allowed::OneOf(words) => words.iter().map(|w| w.to_string()).collect(),
                    Allowed::Bool => vec!["true".into(), "false".into(), "yes".into()],
                    Allowed::Int { min, max } => vec![
                        min.to_string(),
                        max.to_string(),
                        (max + 1).to_string(),
                        format!("+{min}"),
                        format!("0{max}"),
                    ],
                    Allowed::Signed { min, max } => vec![
                        min.to_string(),
                        max.to_string(),
                        (min - 1).to_string(),
                        "-0".into(),
                        format!("+{max}"),
                    ],
                };
                values.extend(["".into(), "-1".into(), format!(" {}", k.default)]);
                (k.name.to_string(), values)
            })
            .collect()
    }
}

fn broker_and_sets() -> impl Strategy<Value = (String, Vec<String>)> {
    let brokers: Vec<(String, KeyValues)> = BROKERS
        .iter()
        .map(|b| (b.to_string(), dispatch(b, Values).unwrap()))
        .collect();
    (
        0..brokers.len(),
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            0..4,
        ),
    )
        .prop_map(move |(b, picks)| {
            let (broker, keys) = &brokers[b];
            let sets = picks
                .into_iter()
                .map(|(k, v)| {
                    let (name, values) = &keys[k.index(keys.len())];
                    format!("{name}={}", values[v.index(values.len())])
                })
                .collect();
            (broker.clone(), sets)
        })
}

fn flags() -> impl Strategy<Value = Vec<String>> {
    let number = prop_oneof![
        (0u64..25).prop_map(|n| n.to_string()),
        Just("-1".to_string()),
        Just("+3".to_string()),
        Just("007".to_string()),
        Just("18446744073709551616".to_string()),
        Just("x".to_string()),
    ];
    let flag = prop_oneof![
        Just("--messages"),
        Just("--producers"),
        Just("--consumers"),
        Just("--rate"),
        Just("--handler-ms"),
        Just("--keys"),
        Just("--seed"),
    ];
    let faults = prop_oneof![
        Just("tcp"),
        Just("all"),
        Just("none"),
        Just("crash,power"),
        Just("all,crash"),
        Just("none,loss"),
        Just("sunspots"),
        Just(""),
    ];
    (prop::collection::vec((flag, number), 0..4), faults).prop_map(|(pairs, faults)| {
        let mut words = vec!["--faults".to_string(), faults.to_string()];
        for (flag, value) in pairs {
            words.push(flag.to_string());
            words.push(value);
        }
        words
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_configurations_and_flags_never_panic_and_exit_by_the_contract(
        (broker, sets) in broker_and_sets(),
        flags in flags(),
    ) {
        let mut words = vec!["sim".to_string(), "--broker".into(), broker, "--seeds".into(), "1".into()];
        for set in sets {
            words.push("--set".into());
            words.push(set);
        }
        words.extend(flags);
        // Keep every run short: a handful of messages unless a flag above said otherwise.
        if !words.iter().any(|w| w == "--messages") {
            words.extend(["--messages".to_string(), "3".to_string()]);
        }
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let out = mqcheck(&args);
        prop_assert!(!out.stderr.contains("panicked"), "{words:?}: {}", out.stderr);
        prop_assert!([0, 1, 2, 3].contains(&out.code), "{words:?}: exit {}", out.code);
        if out.code == 2 {
            prop_assert_eq!(out.stderr.lines().count(), 1, "{:?}: {}", words, out.stderr);
            prop_assert!(out.stderr.starts_with("error: "), "{:?}: {}", words, out.stderr);
        }
    }
}
