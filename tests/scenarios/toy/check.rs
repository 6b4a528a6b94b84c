//! The model checker on the toy, one fault at a time: every placement of the fault explored,
//! asserting the effect the simulator's test of that fault asserts.

use super::*;
use mqcheck_faults::{clock, tcp};
use mqcheck_models::{Bounds, CheckModel, CheckState, DOWNTIMES_MS, PARTITION_MS};
use stateright::{Checker, CheckerVisitor, Expectation, Model, Path};
use std::sync::{Arc, Mutex};

type ToyModel = CheckModel<Toy>;

/// The pinger's tick: long enough that a restart after the shorter downtime comes before its
/// last send.
const INTERVAL_MS: u64 = 600;

/// The toy the checker explores: three numbers, fsynced every two; a run ends 20 s after the
/// nemesis' last act, past a partition's retransmission.
fn toy() -> Toy {
    Toy {
        interval_ms: INTERVAL_MS,
        flush_every: 2,
        drain: Duration::from_secs(20),
        ..Toy::new(3)
    }
}

/// What one exhaustive check found.
struct Found {
    /// The `always` properties violated somewhere.
    violated: BTreeSet<&'static str>,
    /// The `sometimes` properties reached.
    reached: BTreeSet<&'static str>,
    /// The histories of the runs that ended.
    ends: Vec<History>,
    unique_states: usize,
}

/// Keeps the history of every run's last state.
struct Ends(Arc<Mutex<Vec<History>>>);

impl CheckerVisitor<ToyModel> for Ends {
    fn visit(&self, model: &ToyModel, path: Path<CheckState<Toy>, <ToyModel as Model>::Action>) {
        let state = path.last_state();
        if model.ended(state) {
            self.0.lock().unwrap().push(model.history(state));
        }
    }
}

/// Checks `toy` with only `faults` allowed, within the budgets.
fn explore(toy: &Toy, faults: &str, max_crashes: usize, max_net_faults: usize) -> Found {
    let bounds = Bounds {
        workload: Workload {
            messages: toy.messages,
            producers: 1,
            consumers: 1,
            ..Workload::default()
        },
        faults: faults.parse().unwrap(),
        max_crashes,
        max_net_faults,
    };
    let model = CheckModel::new(toy, bounds);
    let ends = Arc::new(Mutex::new(Vec::new()));
    let done = model
        .checker()
        .visitor(Ends(ends.clone()))
        .spawn_bfs()
        .join();
    let discoveries = done.discoveries();
    let mut found = Found {
        violated: BTreeSet::new(),
        reached: BTreeSet::new(),
        ends: std::mem::take(&mut *ends.lock().unwrap()),
        unique_states: done.unique_state_count(),
    };
    for property in done.model().properties() {
        if discoveries.contains_key(property.name) {
            match property.expectation {
                Expectation::Sometimes => found.reached.insert(property.name),
                _ => found.violated.insert(property.name),
            };
        }
    }
    assert!(!found.ends.is_empty(), "no run of {faults} ended");
    found
}

/// Asserts the delivery guarantees TCP keeps under this fault held in every state, and the
/// fault struck.
fn assert_tcp_holds(found: &Found, coverage: &str) {
    assert_eq!(found.violated, BTreeSet::new());
    for p in [coverage, "a record is acknowledged", "a consumer reads"] {
        assert!(
            found.reached.contains(p),
            "{p} unreached: {:?}",
            found.reached
        );
    }
}

/// Every number delivered once, in order, acked, in the receiver's first session, and no
/// reset noticed: the run of a fault that only delays.
fn all_once_in_order_without_reset(h: &History) -> bool {
    numbers(h) == [0, 1, 2]
        && acked(h) == BTreeSet::from([0, 1, 2])
        && deliveries(h).iter().all(|d| d.session == session(1, 0))
        && resets(h).is_empty()
        && commits(h, STARTED).len() == 1
}

fn assert_every_run_delivers_all_once_in_order_without_reset(found: &Found) {
    if let Some(h) = found
        .ends
        .iter()
        .find(|h| !all_once_in_order_without_reset(h))
    {
        panic!("{h:#?}");
    }
}

/// How late each delivery was: the deliveries' times less their sends'.
fn delays(h: &History) -> Vec<u64> {
    let sent = sent_at(h);
    deliveries(h)
        .iter()
        .map(|d| d.time_ms - sent[&d.n])
        .collect()
}

#[test]
fn check_without_faults_the_one_run_delivers_every_number_once_in_order_at_its_send() {
    let found = explore(&toy(), "none", 0, 0);
    assert_eq!(found.violated, BTreeSet::new());
    assert_every_run_delivers_all_once_in_order_without_reset(&found);
    // Time moves only at events: each number arrives the instant it is sent, at each tick.
    for h in &found.ends {
        assert_eq!(delays(h), [0, 0, 0]);
        let ticks: Vec<u64> = sent_at(h).into_values().collect();
        assert_eq!(ticks, [INTERVAL_MS, 2 * INTERVAL_MS, 3 * INTERVAL_MS]);
    }
}

#[test]
fn check_loss_delays_a_number_by_tcp_retransmission_and_breaks_no_guarantee() {
    let found = explore(&toy(), "loss", 0, 2);
    assert_tcp_holds(&found, "a segment is lost");
    assert_every_run_delivers_all_once_in_order_without_reset(&found);
    // A number lost once arrives one RTO late, lost twice (it, or an ack)… the same number
    // twice in a row is lost before the first retransmission, so it waits one RTO more.
    let late: BTreeSet<u64> = found.ends.iter().flat_map(delays).collect();
    assert_eq!(
        late,
        BTreeSet::from([0, tcp::RTO_MIN_MS, 2 * tcp::RTO_MIN_MS])
    );
}

#[test]
fn check_partition_holds_every_number_until_the_retransmission_after_the_heal() {
    let found = explore(&toy(), "partition", 0, 1);
    assert_tcp_holds(&found, "a partition happens");
    assert_every_run_delivers_all_once_in_order_without_reset(&found);
    // The first number the cut holds goes out again 12.6 s after it was sent, whenever in the
    // 10 s partition that was: the first retransmission after the heal (200 ms doubling, timed
    // from its own transmission). Those sent behind it go with it.
    let after_heal = tcp::delivery_after(0, PARTITION_MS).unwrap();
    assert_eq!(after_heal, 12_600);
    assert!(found.ends.iter().any(|h| delays(h).iter().any(|d| *d > 0)));
    for h in &found.ends {
        let late: Vec<u64> = delays(h).into_iter().filter(|d| *d > 0).collect();
        if let Some(first) = late.first() {
            assert_eq!(*first, after_heal, "{h:#?}");
            assert!(late.iter().all(|d| *d > PARTITION_MS), "{h:#?}");
        }
    }
}

#[test]
fn check_pause_holds_every_number_until_the_receiver_resumes_and_breaks_no_guarantee() {
    let found = explore(&toy(), "pause", 1, 0);
    assert_tcp_holds(&found, "a pause happens");
    assert_every_run_delivers_all_once_in_order_without_reset(&found);
    let late: BTreeSet<u64> = found.ends.iter().flat_map(delays).collect();
    // Sent while paused, read at the resume (10 s after the pause began).
    assert!(late.iter().any(|d| *d > 0), "{late:?}");
    assert!(
        late.iter()
            .all(|d| *d == 0 || (PAUSE_MS - 3 * INTERVAL_MS..=PAUSE_MS).contains(d)),
        "{late:?}"
    );
}

const PAUSE_MS: u64 = 10_000;

#[test]
fn check_crash_closes_the_pinger_s_connection_at_once_and_keeps_the_page_cache() {
    let found = explore(&toy(), "crash", 1, 0);
    assert_eq!(found.violated, BTreeSet::new());
    assert!(found.reached.contains("a crash happens"));
    let mut closes = 0;
    for h in &found.ends {
        let starts = commits(h, STARTED);
        if starts.len() == 1 {
            assert!(all_once_in_order_without_reset(h), "{h:#?}");
            continue;
        }
        assert_eq!(starts.len(), 2, "{h:?}");
        let (up_ms, kept) = starts[1];
        let ds = deliveries(h);
        let before = ds.iter().filter(|d| starts_of(d.session) == 1).count();
        // The page cache survives a process crash: everything written is found.
        assert_eq!(kept, before as u64, "{h:?}");
        assert!(increasing(&numbers(h)));
        // The pinger read the close at the instant of the crash, if it ever sent anything;
        // its next send while the receiver is down was refused.
        let rs = resets(h);
        let sent = sent_at(h);
        let down_ms = up_ms - DOWNTIMES_MS.iter().find(|d| **d <= up_ms).unwrap();
        let connected = sent.values().any(|t| *t <= down_ms);
        if connected {
            closes += 1;
            assert!(rs.iter().all(|(t, _)| *t < up_ms), "{h:?}");
            assert!(!rs.is_empty(), "no close noticed: {h:?}");
        }
        // Everything sent after the restart arrives.
        for (n, t) in &sent {
            if *t >= up_ms {
                assert!(numbers(h).contains(n), "{n} sent at {t}: {h:?}");
            }
        }
    }
    assert!(closes > 0);
}

#[test]
fn check_power_loss_keeps_only_fsynced_numbers_and_the_pinger_learns_at_its_next_send_after_restart(
) {
    let found = explore(&toy(), "power", 1, 0);
    // The deliveries were observed when they happened: losing the page cache loses the
    // receiver's copy, not the observation, so at-least-once still holds.
    assert_eq!(found.violated, BTreeSet::new());
    assert!(found.reached.contains("a power loss happens"));
    let (mut lost_cache, mut reset_after_restart) = (false, false);
    for h in &found.ends {
        let starts = commits(h, STARTED);
        if starts.len() == 1 {
            assert!(all_once_in_order_without_reset(h), "{h:#?}");
            continue;
        }
        let (up_ms, kept) = starts[1];
        let ds = deliveries(h);
        let before = ds.iter().filter(|d| starts_of(d.session) == 1).count() as u64;
        // Only what was fsynced survives: a multiple of flush_every.
        assert_eq!(kept, before - before % 2, "{h:?}");
        lost_cache |= kept < before;
        // The pinger noticed nothing before the restart; its first send after it drew the reset
        // if it had a connection, at that very instant.
        let rs = resets(h);
        assert!(rs.iter().all(|(t, _)| *t >= up_ms), "{h:?}");
        let sent = sent_at(h);
        if let Some((n, t)) = sent.iter().find(|(_, t)| **t >= up_ms) {
            if before > 0 {
                assert_eq!(rs, vec![(*t, *n)], "{h:?}");
                assert!(!numbers(h).contains(n));
                reset_after_restart = true;
            }
        } else {
            assert_eq!(rs, [], "{h:?}");
        }
    }
    assert!(lost_cache, "no run lost unsynced numbers");
    assert!(reset_after_restart, "no run sent after the restart");
}

#[test]
fn check_fast_clock_fires_the_receiver_s_timers_early_and_breaks_no_guarantee() {
    let toy = Toy {
        interval_ms: 10,
        sync_every_ms: Some(16),
        flush_every: usize::MAX,
        ..Toy::new(3)
    };
    let gaps = |found: &Found| -> BTreeSet<u64> {
        found
            .ends
            .iter()
            .flat_map(|h| {
                let times: Vec<u64> = commits(h, FSYNCED).iter().map(|(t, _)| *t).collect();
                times.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
            })
            .collect()
    };
    let found = explore(&toy, "clock", 1, 0);
    assert_tcp_holds(&found, "a clock runs fast");
    assert_every_run_delivers_all_once_in_order_without_reset(&found);
    // A 16 ms timer set while the clock runs at 2000 per mille fires after 8 ms.
    assert!(
        gaps(&found).contains(&clock::scaled(16, clock::FAST)),
        "{:?}",
        gaps(&found)
    );
    assert!(gaps(&explore(&toy, "none", 0, 0)).iter().all(|g| *g == 16));
}

#[test]
fn check_duplicate_breaks_at_most_once_and_nothing_else() {
    let toy = Toy { burst: 3, ..toy() };
    let found = explore(&toy, "duplicate", 0, 1);
    assert!(found.reached.contains("a packet is duplicated"));
    // The copy is delivered at the same position again: a rewind as well as a duplicate.
    assert_eq!(found.violated, BTreeSet::from(["at-most-once", "ordering"]));
    for h in &found.ends {
        let mut ns = numbers(h);
        ns.dedup();
        assert_eq!(ns, [0, 1, 2], "nothing lost or reordered: {h:?}");
        assert_eq!(resets(h), []);
    }
}

#[test]
fn check_reorder_breaks_fifo_and_nothing_else() {
    let toy = Toy { burst: 3, ..toy() };
    let found = explore(&toy, "reorder", 0, 1);
    assert!(found.reached.contains("packets are reordered"));
    assert_eq!(found.violated, BTreeSet::from(["ordering"]));
    let orders: BTreeSet<Vec<u32>> = found.ends.iter().map(numbers).collect();
    assert_eq!(
        orders,
        BTreeSet::from([vec![0, 1, 2], vec![1, 0, 2], vec![0, 2, 1]])
    );
}

#[test]
fn check_the_budgets_bound_the_search() {
    let one = explore(&toy(), "loss", 0, 1).unique_states;
    let two = explore(&toy(), "loss", 0, 2).unique_states;
    assert!(one < two, "{one} {two}");
}
