//! `--repair`: for a broken cell, the smallest changes of the broker's own keys under which the
//! same fault class no longer breaks the guarantee — single changes from the row's
//! configuration, then pairs. A candidate is tried first on the seeds known to violate it
//! (cheap, and most candidates fail there), and only a survivor is confirmed on the cell's whole
//! seed range, so a change that merely moves the violation to another seed is no repair.

use super::cells::Class;
use crate::report::Coverage;
use crate::spec::Spec;
use mqcheck_brokers::config::Allowed;
use mqcheck_brokers::{Config, Key, System};
use mqcheck_invariants::Invariant;
use mqcheck_sim::{judge, run, schedule_for, sweep};
use std::sync::Mutex;

/// At most this many violating seeds screen a candidate.
const SCREEN: usize = 3;

/// At most this many pairs are screened.
const PAIRS: usize = 400;

/// The values worth trying for a key set to `current`: every other word; for a number, the
/// bounds, the default and the small numbers replication and acknowledgement counts use.
fn candidates(key: &Key, current: &str) -> Vec<String> {
    let values: Vec<String> = match &key.allowed {
        Allowed::OneOf(words) => words.iter().map(|w| w.to_string()).collect(),
        Allowed::Bool => vec!["true".into(), "false".into()],
        Allowed::Int { min, max } => [*min, 1, 2, 3]
            .into_iter()
            .chain(key.default.parse().ok())
            .filter(|v| (min..=max).contains(&v))
            .map(|v| v.to_string())
            .collect(),
        Allowed::Signed { min, max } => [*min, -1, 0, 1, 2, 3]
            .into_iter()
            .chain(key.default.parse().ok())
            .filter(|v| (min..=max).contains(&v))
            .map(|v| v.to_string())
            .collect(),
    };
    let mut values: Vec<String> = values.into_iter().filter(|v| v != current).collect();
    values.sort();
    values.dedup();
    values
}

/// The row's settings with `changes` applied, if the broker accepts them.
fn configure<S: System>(row: &[String], changes: &[String]) -> Option<Config> {
    let key = |s: &String| s.split_once('=').map_or(s.clone(), |(k, _)| k.to_string());
    let changed: Vec<String> = changes.iter().map(key).collect();
    let mut sets: Vec<String> = row
        .iter()
        .filter(|s| !changed.contains(&key(s)))
        .cloned()
        .collect();
    sets.extend(changes.iter().cloned());
    let config = Config::parse(S::NAME, &S::keys(), &sets).ok()?;
    S::validate(&config).ok()?;
    Some(config)
}

/// The smallest sets of changes (single ones if any works, else pairs) under which `inv` holds,
/// tested, in every seed of `0..seeds` under `class`; empty when none is found.
pub fn repairs<S: System>(
    spec: &Spec,
    row: &[String],
    class: Class,
    inv: Invariant,
    seeds: u64,
) -> Vec<Vec<String>> {
    let faults = class.faults();
    let system = S::build(&spec.setup.config, spec.setup.workload);
    let violating = Mutex::new(Vec::new());
    sweep(&system, 0..seeds, &faults, &[inv], &|r| {
        if r.violations.iter().any(|v| v.invariant == inv) {
            violating
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(r.seed);
        }
        true
    });
    let mut violating = violating.into_inner().unwrap_or_else(|e| e.into_inner());
    violating.sort();
    violating.truncate(SCREEN);
    let repaired = |changes: &[String]| {
        let Some(config) = configure::<S>(row, changes) else {
            return false;
        };
        let system = S::build(&config, spec.setup.workload);
        let screened = violating.iter().all(|seed| {
            let r = run(
                &system,
                *seed,
                &schedule_for(&system, *seed, &faults),
                false,
            );
            !judge(&system, &r, &[inv])
                .iter()
                .any(|v| v.invariant == inv)
        });
        if !screened {
            return false;
        }
        // A change that leaves nothing to judge (no transactions, say) repairs nothing.
        let tally = sweep(&system, 0..seeds, &faults, &[inv], &|_| true);
        !tally.violated.contains_key(&inv)
            && tally.incomplete == 0
            && Coverage::from(&tally).tests(inv)
    };
    let values = spec.setup.config.values();
    let singles: Vec<String> = S::keys()
        .iter()
        .flat_map(|k| {
            candidates(k, &values[k.name])
                .into_iter()
                .map(|v| format!("{}={v}", k.name))
        })
        .collect();
    let found: Vec<Vec<String>> = singles
        .iter()
        .map(|s| vec![s.clone()])
        .filter(|c| repaired(c))
        .collect();
    if !found.is_empty() {
        return found;
    }
    let name = |s: &String| s.split_once('=').map(|(k, _)| k.to_string());
    let mut pairs = Vec::new();
    for (i, a) in singles.iter().enumerate() {
        for b in &singles[i + 1..] {
            if name(a) != name(b) && pairs.len() < PAIRS {
                pairs.push(vec![a.clone(), b.clone()]);
            }
        }
    }
    pairs.into_iter().filter(|c| repaired(c)).collect()
}
