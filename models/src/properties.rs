//! The properties: the simulator's checkers over the clients' observations, the broker's own
//! structural invariants, and coverage.

use crate::model::{CheckModel, CheckState};
use mqcheck_brokers::{NodeView, System, SystemView};
use mqcheck_faults::Fault;
use mqcheck_invariants::{at_least_once, at_most_once, no_unexpected, ordering, History, Op};
use stateright::Property;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the checkers and the coverage say of the clients' application logs: a function of the
/// logs alone (the checkers' verdicts read no times), so a state shares it with every state a
/// step reached without changing a log, and it is computed once for all of them.
#[derive(Clone, Copy, Debug)]
pub struct LogFacts {
    at_least_once: bool,
    at_most_once: bool,
    ordering: bool,
    no_unexpected: bool,
    /// Every message sent, every send answered, each acknowledged one delivered.
    settled: bool,
    acknowledged: bool,
    consumed: bool,
}

impl LogFacts {
    fn of<S: System>(model: &CheckModel<S>, history: &History) -> Self {
        let w = model.bounds.workload;
        let sends = history
            .events
            .iter()
            .filter(|e| matches!(e.op, Op::Send { .. }))
            .count();
        let seen = |what: fn(&Op) -> bool| history.events.iter().any(|e| what(&e.op));
        LogFacts {
            at_least_once: at_least_once(history).is_empty(),
            at_most_once: at_most_once(history).is_empty(),
            ordering: ordering(history, &model.promise).is_empty(),
            no_unexpected: no_unexpected(history).is_empty(),
            settled: sends == (w.messages * w.producers) as usize && history.settled(),
            acknowledged: seen(|op| matches!(op, Op::Ack { .. })),
            consumed: seen(|op| matches!(op, Op::Deliver { .. })),
        }
    }
}

/// The facts of `state`'s application logs.
pub(crate) fn facts<S: System>(model: &CheckModel<S>, state: &CheckState<S>) -> LogFacts {
    *state
        .facts
        .get_or_init(|| LogFacts::of(model, &model.history(state)))
}

/// Are the clients settled in `state`: every message sent and answered, each acknowledged one
/// delivered?
pub(crate) fn settled<S: System>(model: &CheckModel<S>, state: &CheckState<S>) -> bool {
    facts(model, state).settled
}

/// The whole system as the broker's hooks read it.
pub fn view<'a, S: System>(
    model: &'a CheckModel<S>,
    state: &'a CheckState<S>,
) -> SystemView<'a, S> {
    SystemView {
        nodes: model
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| NodeView {
                name: &node.name,
                role: node.role,
                state: state.nodes[i].state.as_deref(),
                storage: state.nodes[i].storage.as_ref(),
            })
            .collect(),
        in_flight: state.network.values().flat_map(|q| q.iter()).collect(),
    }
}

/// At-least-once, judged where a bounded search can judge it: at the end of a run (every fault
/// healed, nothing in flight, the clients settled or time up), as the simulator does after its
/// drain. An acknowledged message some group of its audience never received is lost.
pub fn lost<S: System>(model: &CheckModel<S>, state: &CheckState<S>) -> Vec<String> {
    if !model.ended(state) {
        return Vec::new();
    }
    model.judged_an_end.store(true, Ordering::Relaxed);
    at_least_once(&model.history(state))
        .into_iter()
        .map(|v| v.explanation)
        .collect()
}

fn at_least_once_holds<S: System>(m: &CheckModel<S>, s: &CheckState<S>) -> bool {
    if !m.ended(s) {
        return true;
    }
    m.judged_an_end.store(true, Ordering::Relaxed);
    facts(m, s).at_least_once
}

fn at_most_once_holds<S: System>(m: &CheckModel<S>, s: &CheckState<S>) -> bool {
    facts(m, s).at_most_once
}

fn ordering_holds<S: System>(m: &CheckModel<S>, s: &CheckState<S>) -> bool {
    facts(m, s).ordering
}

fn no_unexpected_holds<S: System>(m: &CheckModel<S>, s: &CheckState<S>) -> bool {
    facts(m, s).no_unexpected
}

fn acknowledged<S: System>(m: &CheckModel<S>, s: &CheckState<S>) -> bool {
    facts(m, s).acknowledged
}

fn consumed<S: System>(m: &CheckModel<S>, s: &CheckState<S>) -> bool {
    facts(m, s).consumed
}

/// Has the `K`th fault of [`Fault::ALL`] struck?
fn struck<S: System, const K: usize>(_: &CheckModel<S>, s: &CheckState<S>) -> bool {
    s.nemesis.struck(Fault::ALL[K])
}

/// The coverage property that says a fault struck, by fault.
fn coverage<S: System>(fault: Fault) -> (&'static str, Condition<S>) {
    let conditions: [Condition<S>; 8] = [
        struck::<S, 0>,
        struck::<S, 1>,
        struck::<S, 2>,
        struck::<S, 3>,
        struck::<S, 4>,
        struck::<S, 5>,
        struck::<S, 6>,
        struck::<S, 7>,
    ];
    let k = Fault::ALL.iter().position(|f| *f == fault).expect("listed");
    let name = match fault {
        Fault::Crash => "a crash happens",
        Fault::Power => "a power loss happens",
        Fault::Pause => "a pause happens",
        Fault::Partition => "a partition happens",
        Fault::Loss => "a segment is lost",
        Fault::Clock => "a clock runs fast",
        Fault::Duplicate => "a packet is duplicated",
        Fault::Reorder => "packets are reordered",
    };
    (name, conditions[k])
}

fn leader_changed<S: System>(_: &CheckModel<S>, s: &CheckState<S>) -> bool {
    s.nemesis.leaders.len() >= 2
}

/// The `K`th structural invariant of the broker.
fn structural<S: System, const K: usize>(m: &CheckModel<S>, s: &CheckState<S>) -> bool {
    (m.invariants[K].holds)(&view(m, s))
}

/// A property's condition.
type Condition<S> = fn(&CheckModel<S>, &CheckState<S>) -> bool;

/// Up to this many structural invariants per broker.
const STRUCTURAL: usize = 6;

/// Up to this many safety properties: the four checkers and the structural invariants.
const SAFETY: usize = 4 + STRUCTURAL;

/// A safety property's check, and whether its first violation has been reported.
pub struct Safety<S: System> {
    check: Condition<S>,
    reported: AtomicBool,
}

/// The `P`th safety property, violated only in the first violating state the search meets.
/// Stateright keeps the last violating state it meets as a property's counterexample (each one
/// overwrites the discovery), which in breadth-first search is the longest; reporting the first
/// keeps the shortest. The search itself does not change: it explores past violations either way.
/// Once the search is stopped ([`CheckModel::stop`]) no state is judged.
fn first_violation<S: System, const P: usize>(m: &CheckModel<S>, s: &CheckState<S>) -> bool {
    let safety = &m.safety[P];
    m.stopped()
        || safety.reported.load(Ordering::Relaxed)
        || (safety.check)(m, s)
        || safety.reported.swap(true, Ordering::Relaxed)
}

/// Every property of broker `S`'s model under `faults`, and the checks behind its safety ones.
pub fn all<S: System>(
    system: &S,
    bounds: &crate::Bounds,
) -> (Vec<Property<CheckModel<S>>>, Vec<Safety<S>>) {
    let faults = &bounds.faults;
    let mut checks: Vec<(&'static str, Condition<S>)> = vec![
        ("at-least-once", at_least_once_holds::<S>),
        ("at-most-once", at_most_once_holds::<S>),
        ("ordering", ordering_holds::<S>),
        ("no-unexpected", no_unexpected_holds::<S>),
    ];
    let structural: [Condition<S>; STRUCTURAL] = [
        structural::<S, 0>,
        structural::<S, 1>,
        structural::<S, 2>,
        structural::<S, 3>,
        structural::<S, 4>,
        structural::<S, 5>,
    ];
    let invariants = S::invariants();
    assert!(invariants.len() <= STRUCTURAL, "raise STRUCTURAL");
    checks.extend(invariants.iter().map(|i| i.name).zip(structural));
    assert!(checks.len() <= SAFETY, "raise SAFETY");
    let slots: [Condition<S>; SAFETY] = [
        first_violation::<S, 0>,
        first_violation::<S, 1>,
        first_violation::<S, 2>,
        first_violation::<S, 3>,
        first_violation::<S, 4>,
        first_violation::<S, 5>,
        first_violation::<S, 6>,
        first_violation::<S, 7>,
        first_violation::<S, 8>,
        first_violation::<S, 9>,
    ];
    let mut properties: Vec<_> = checks
        .iter()
        .zip(slots)
        .map(|((name, _), slot)| Property::always(name, slot))
        .collect();
    let safety = checks
        .into_iter()
        .map(|(_, check)| Safety {
            check,
            reported: AtomicBool::new(false),
        })
        .collect();
    properties.push(Property::sometimes(
        "a record is acknowledged",
        acknowledged::<S>,
    ));
    properties.push(Property::sometimes("a consumer reads", consumed::<S>));
    // Every fault in the set must strike somewhere, or the check says nothing about it.
    for fault in faults.0.iter().copied() {
        let budget = if fault.hits_process() {
            bounds.max_crashes
        } else {
            bounds.max_net_faults
        };
        if budget > 0 {
            let (name, condition) = coverage::<S>(fault);
            properties.push(Property::sometimes(name, condition));
        }
    }
    let crashes =
        bounds.max_crashes > 0 && (faults.contains(Fault::Crash) || faults.contains(Fault::Power));
    let partitions = bounds.max_net_faults > 0 && faults.contains(Fault::Partition);
    if system.elects_leaders() && (crashes || partitions) {
        properties.push(Property::sometimes("a leader changes", leader_changed::<S>));
    }
    assert!(
        properties.len() <= 64,
        "the reduction keeps a bit per property"
    );
    (properties, safety)
}

/// Every property's value in `state`, a bit each in the order of [`all`]: the safety checks
/// themselves (not their first-violation wrappers, which remember what they reported) and the
/// coverage conditions. The reduction compares these between states. (The structural invariants
/// read one view of the system between them.)
pub fn values<S: System>(model: &CheckModel<S>, state: &CheckState<S>) -> u64 {
    let structural = model.invariants.len();
    let checkers = model.safety.len() - structural;
    let view = view(model, state);
    let safety = model.safety[..checkers]
        .iter()
        .map(|s| (s.check)(model, state))
        .chain(model.invariants.iter().map(|i| (i.holds)(&view)));
    let coverage = model.properties[model.safety.len()..]
        .iter()
        .map(|p| (p.condition)(model, state));
    safety
        .chain(coverage)
        .enumerate()
        .fold(0, |bits, (i, value)| bits | (u64::from(value) << i))
}

/// Was `property` judged in the search behind `model`? At-least-once is judged only at the end
/// of a run, so a search stopped before any run ended has not judged it; every other property
/// is judged in every state explored.
pub fn judged<S: System>(model: &CheckModel<S>, property: &str) -> bool {
    property != "at-least-once" || model.judged_an_end()
}

/// Why `property` fails in `state`, in the checkers' words.
pub fn explain<S: System>(
    model: &CheckModel<S>,
    property: &str,
    state: &CheckState<S>,
) -> Vec<String> {
    let history = model.history(state);
    let explanations = |vs: Vec<mqcheck_invariants::Violation>| {
        vs.into_iter().map(|v| v.explanation).collect::<Vec<_>>()
    };
    match property {
        "at-least-once" => lost(model, state),
        "at-most-once" => explanations(at_most_once(&history)),
        "ordering" => explanations(ordering(&history, &model.promise)),
        "no-unexpected" => explanations(no_unexpected(&history)),
        _ => Vec::new(),
    }
}
