//! The simulator on the toy: each test builds an explicit [`Schedule`] and asserts exact facts
//! about the history.

use super::*;
use mqcheck_faults::{clock, tcp, Fault};
use mqcheck_invariants::{check, Invariant, Kind};
use mqcheck_sim::{
    cast, evaluate, run, schedule_for, shrink, sweep, FaultOp, FaultSet, Run, Schedule,
    ScheduledFault, Split, Target,
};

/// The pinger sends one number every this many ms.
const INTERVAL_MS: u64 = 10;
/// A node comes up 1 ms after it is (re)started: binding its endpoint costs madsim's minimum sleep.
const BOOT_MS: u64 = 1;
/// From the sender's `send` to the receiver's handler: madsim's link latency (1..10 ms) plus 1 ms
/// on each side — madsim's `rand_delay` of a few µs before every send and after every receive is
/// rounded up to its minimum sleep of 1 ms.
const MIN_LATENCY_MS: u64 = 3;
const MAX_LATENCY_MS: u64 = 11;
/// How long the simulated client library takes to hand a refused send's reset to the actor.
const RESET_NOTICE_MS: u64 = 5;

fn schedule(window_ms: u64, faults: Vec<ScheduledFault>) -> Schedule {
    Schedule { window_ms, faults }
}

fn fault(at_ms: u64, for_ms: u64, op: FaultOp) -> ScheduledFault {
    ScheduledFault { at_ms, for_ms, op }
}

fn receiver() -> Target {
    Target::Node(RECEIVER)
}

/// When the pinger's tick for number `n` fires in a run where nothing slows it.
fn tick_ms(n: u32) -> u64 {
    BOOT_MS + INTERVAL_MS * (n as u64 + 1)
}

fn kinds(r: &Run, invariant: Invariant) -> BTreeSet<Kind> {
    check(invariant, &r.history, &Toy::ordering())
        .iter()
        .map(|v| v.kind)
        .collect()
}

fn count_each(ns: &[u32]) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for n in ns {
        *counts.entry(*n).or_default() += 1;
    }
    counts
}

/// Every number of `0..n` delivered exactly once, in order, in the receiver's first session with
/// no reset noticed, and the pinger noticed no reset either.
fn assert_all_once_in_order_without_reset(h: &History, n: u32) {
    assert_eq!(numbers(h), (0..n).collect::<Vec<_>>());
    assert!(deliveries(h).iter().all(|d| d.session == session(1, 0)));
    assert_eq!(resets(h), []);
    assert_eq!(commits(h, STARTED).len(), 1, "no restart");
    assert!(evaluate(h, &Invariant::SELECTABLE, &Toy::ordering()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The toy plugs in the way a broker does.

#[test]
fn the_toy_is_built_from_a_config_and_a_workload() {
    assert_eq!(Toy::NAME, "toy");
    assert!(!Toy::summary().is_empty());
    assert!(Toy::scenarios().is_empty());
    let config = Config::parse(Toy::NAME, &Toy::keys(), &[]).unwrap();
    Toy::validate(&config).unwrap();
    let err = Config::parse(Toy::NAME, &Toy::keys(), &["acks=1".to_string()]).unwrap_err();
    assert!(err.to_string().contains("acks"), "{err}");
    let toy = Toy::build(
        &config,
        Workload {
            messages: 7,
            producers: 1,
            consumers: 1,
            ..Workload::default()
        },
    );
    let nodes = toy.nodes();
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        (nodes[PINGER].role, nodes[RECEIVER].role),
        (Role::Producer, Role::Consumer)
    );
    let r = run(&toy, 1, &schedule(500, vec![]), true);
    assert_eq!(numbers(&r.history), (0..7).collect::<Vec<_>>());
    // The trace names nodes and describes messages in the toy's words.
    let lines: Vec<String> = r
        .trace
        .iter()
        .map(|l| format!("{} {}", l.node, l.text))
        .collect();
    for line in [
        "receiver <- pinger: num 6",
        "pinger <- receiver: ack 6",
        "receiver app: deliver p0:6 to group 0 from position 6",
    ] {
        assert!(lines.contains(&line.to_string()), "{line}: {lines:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// No faults, and determinism.

#[test]
fn without_faults_every_number_arrives_once_in_order_one_latency_after_its_tick() {
    let toy = Toy::new(50);
    let r = run(&toy, 7, &schedule(1000, vec![]), false);
    let h = &r.history;
    assert_all_once_in_order_without_reset(h, 50);
    assert_eq!(acked(h), (0..50).collect());
    assert_eq!(commits(h, STARTED), vec![(BOOT_MS, 0)]);
    // Every fourth number is fsynced.
    let fsyncs: Vec<u64> = commits(h, FSYNCED).iter().map(|(_, c)| *c).collect();
    assert_eq!(fsyncs, (1..=12).map(|k| 4 * k).collect::<Vec<_>>());
    // 50 numbers and 50 acks crossed the network, and no reset.
    assert_eq!(r.delivered, 100);
    let sent = sent_at(h);
    for (n, at) in &sent {
        assert_eq!(*at, tick_ms(*n), "send time of {n}");
    }
    let latencies: BTreeSet<u64> = deliveries(h)
        .iter()
        .map(|d| d.time_ms - sent[&d.n])
        .collect();
    assert!(
        latencies
            .iter()
            .all(|l| (MIN_LATENCY_MS..=MAX_LATENCY_MS).contains(l)),
        "{latencies:?}"
    );
    assert!(latencies.len() > 3, "latencies vary: {latencies:?}");
    // The run lasts the window plus the drain.
    assert_eq!(r.simulated_ms, 1000 + toy.drain.as_millis() as u64);
}

fn busy_schedule() -> Schedule {
    schedule(
        2000,
        vec![
            fault(50, 300, FaultOp::Reorder),
            fault(100, 400, FaultOp::Duplicate { per_mille: 300 }),
            fault(300, 200, FaultOp::Crash { target: receiver() }),
            fault(600, 500, FaultOp::Loss { per_mille: 100 }),
            fault(
                1200,
                300,
                FaultOp::Partition {
                    split: Split::OneWay(vec![PINGER]),
                },
            ),
        ],
    )
}

#[test]
fn same_seed_and_schedule_replay_identically_and_other_seeds_differ() {
    let toy = Toy::new(150);
    let plan = busy_schedule();
    let a = run(&toy, 42, &plan, true);
    let b = run(&toy, 42, &plan, true);
    assert!(a.trace.len() > 300, "the trace records the run");
    assert_eq!(a.history, b.history);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.delivered, b.delivered);
    assert_eq!(a.simulated_ms, b.simulated_ms);
    // The trace is only recorded on request; the history does not depend on it.
    let quiet = run(&toy, 42, &plan, false);
    assert!(quiet.trace.is_empty());
    assert_eq!(quiet.history, a.history);

    // Another seed draws other latencies even without faults.
    let calm = schedule(1000, vec![]);
    let x = run(&toy, 1, &calm, true);
    let y = run(&toy, 2, &calm, true);
    assert_eq!(numbers(&x.history), numbers(&y.history));
    assert_ne!(x.trace, y.trace);
    let c = run(&toy, 43, &plan, true);
    assert_ne!(a.trace, c.trace);
}

// ---------------------------------------------------------------------------------------------
// Loss.

#[test]
fn loss_delays_numbers_by_tcp_retransmission_and_loses_duplicates_or_reorders_none() {
    let toy = Toy::new(200);
    let mut late = 0;
    for seed in 1..=4 {
        let r = run(
            &toy,
            seed,
            &schedule(3000, vec![fault(0, 3000, FaultOp::Loss { per_mille: 100 })]),
            false,
        );
        let h = &r.history;
        assert_all_once_in_order_without_reset(h, 200);
        assert_eq!(acked(h), (0..200).collect(), "seed {seed}");
        let sent = sent_at(h);
        // A number is late by a retransmission timeout (200 ms doubling) when it or one before
        // it was dropped; never later than six drops in a row, TCP keeps retrying.
        let most = tcp::loss_delay_ms(6) + MAX_LATENCY_MS;
        for d in deliveries(h) {
            let delay = d.time_ms - sent[&d.n];
            assert!(delay <= most, "seed {seed}: {d:?} sent {}", sent[&d.n]);
            if delay >= tcp::RTO_MIN_MS {
                late += 1;
            }
        }
    }
    assert!(late >= 20, "only {late} late numbers in four lossy runs");
}

// ---------------------------------------------------------------------------------------------
// Partitions.

/// The run of `split` over `from..until`, asserting what every partition does to the direction
/// it cuts (`numbers`: pinger → receiver; otherwise the acks): nothing crosses while cut, what
/// waited crosses at TCP's first retransmission after the heal, nothing is lost, duplicated or
/// reordered, and neither side notices a reset.
fn assert_partition_delays_only_the_cut_direction(split: Split, numbers_cut: bool, acks_cut: bool) {
    let toy = Toy::new(200);
    let (from, until) = (505, 1505);
    let r = run(
        &toy,
        3,
        &schedule(
            2500,
            vec![fault(from, until - from, FaultOp::Partition { split })],
        ),
        true,
    );
    let h = &r.history;
    assert_all_once_in_order_without_reset(h, 200);
    assert_eq!(acked(h), (0..200).collect());
    let sent = sent_at(h);
    let during = |t: u64| (from + 1..until).contains(&t);
    // What is sent during the cut waits for the first retransmission after the heal: it went
    // out first within a tick and a latency of `from`, so it is retransmitted 200, 600, 1400 ms
    // later (1400 is the first after the heal), and the backlog goes with it. (madsim hands a
    // node one queued packet per simulated ms, so a backlog of 100 takes 100 ms to read.)
    let first = tcp::delivery_after(from, until).unwrap();
    assert_eq!(first, from + 1400);
    let window = first..=first + INTERVAL_MS + 2 * MAX_LATENCY_MS + 100;
    let ds = deliveries(h);
    if numbers_cut {
        assert!(!ds.iter().any(|d| during(d.time_ms)), "a number crossed");
        for d in ds.iter().filter(|d| during(sent[&d.n])) {
            assert!(window.contains(&d.time_ms), "{d:?} sent at {}", sent[&d.n]);
        }
    } else {
        // The receiver still hears every number one latency after it was sent.
        for d in &ds {
            assert!(d.time_ms - sent[&d.n] <= MAX_LATENCY_MS, "{d:?}");
        }
    }
    let acks: Vec<u64> = h
        .events
        .iter()
        .filter(|e| matches!(e.op, Op::Ack { .. }))
        .map(|e| e.time_ms)
        .collect();
    assert_eq!(
        acks.iter().any(|t| during(*t)),
        !acks_cut,
        "acks during the cut"
    );
    if acks_cut {
        assert!(
            acks.iter().any(|t| window.contains(t)),
            "acks after the heal"
        );
    }
    let texts: Vec<&str> = r
        .trace
        .iter()
        .filter(|l| l.node == "nemesis")
        .map(|l| l.text.as_str())
        .collect();
    assert!(texts.contains(&"partition heals"), "{texts:?}");
}

#[test]
fn partition_both_ways_holds_everything_until_the_heal_and_loses_nothing() {
    assert_partition_delays_only_the_cut_direction(Split::Halves(vec![RECEIVER]), true, true);
}

#[test]
fn one_way_partition_of_the_receiver_holds_only_its_acks() {
    assert_partition_delays_only_the_cut_direction(Split::OneWay(vec![RECEIVER]), false, true);
}

#[test]
fn one_way_partition_of_the_pinger_holds_its_numbers_and_so_their_acks() {
    assert_partition_delays_only_the_cut_direction(Split::OneWay(vec![PINGER]), true, true);
}

// ---------------------------------------------------------------------------------------------
// Crash and power loss.

const DOWN_AT: u64 = 1035;
const DOWN_FOR: u64 = 300;
const UP_AT: u64 = DOWN_AT + DOWN_FOR + BOOT_MS;

/// The receiver goes down at [`DOWN_AT`] for [`DOWN_FOR`] by `op`.
fn down_run(op: FaultOp) -> Run {
    let toy = Toy::new(150);
    run(
        &toy,
        5,
        &schedule(2000, vec![fault(DOWN_AT, DOWN_FOR, op)]),
        false,
    )
}

/// Deliveries before the restart, numbers the receiver found on its disk at the restart, and
/// deliveries after it; asserting that what was sent while it was down is lost, and everything
/// sent after it came back arrives.
fn around_restart(r: &Run) -> (Vec<Delivery>, u64, Vec<Delivery>) {
    let h = &r.history;
    let starts = commits(h, STARTED);
    assert_eq!(starts, vec![(BOOT_MS, 0), (UP_AT, starts[1].1)]);
    let (before, after): (Vec<Delivery>, Vec<Delivery>) = deliveries(h)
        .into_iter()
        .partition(|d| starts_of(d.session) == 1);
    assert!(before.iter().all(|d| d.time_ms <= DOWN_AT));
    assert!(after
        .iter()
        .all(|d| d.time_ms > UP_AT && d.session == session(2, 0)));
    let sent = sent_at(h);
    let got: BTreeSet<u32> = numbers(h).into_iter().collect();
    for (n, at) in &sent {
        if (DOWN_AT..UP_AT).contains(at) {
            assert!(!got.contains(n), "{n} sent at {at} reached a dead node");
        }
    }
    assert!(increasing(&numbers(h)));
    assert!(evaluate(h, &Invariant::SELECTABLE, &Toy::ordering()).is_empty());
    (before, starts[1].1, after)
}

#[test]
fn crash_closes_the_pinger_s_connection_at_once_and_keeps_the_page_cache() {
    let r = down_run(FaultOp::Crash { target: receiver() });
    let h = &r.history;
    let (before, kept, after) = around_restart(&r);
    // Everything written survives a process crash, fsynced or not.
    assert_eq!(kept, before.len() as u64);
    assert_ne!(kept % 4, 0, "the test needs unsynced numbers at the crash");
    // The pinger reads the close within a latency of the crash, and its first send while the
    // receiver is down is refused; then it hears nothing until the receiver is back.
    let rs = resets(h);
    assert_eq!(rs.len(), 2, "{rs:?}");
    assert!(
        (DOWN_AT..=DOWN_AT + MAX_LATENCY_MS).contains(&rs[0].0),
        "{rs:?}"
    );
    let first_down_tick = (0..150).find(|n| tick_ms(*n) > DOWN_AT).unwrap();
    assert!(rs
        .iter()
        .any(|r| *r == (tick_ms(first_down_tick) + RESET_NOTICE_MS, first_down_tick)));
    // The first number sent after the restart opens a new connection and arrives.
    let first_up_tick = (0..150).find(|n| tick_ms(*n) > UP_AT).unwrap();
    assert_eq!(after.first().unwrap().n, first_up_tick);
    assert_eq!(
        numbers(h).last(),
        Some(&149),
        "everything after the restart arrives"
    );
}

#[test]
fn power_loss_keeps_only_fsynced_numbers_and_the_pinger_learns_at_its_next_send_after_restart() {
    let r = down_run(FaultOp::Power { target: receiver() });
    let h = &r.history;
    let (before, kept, after) = around_restart(&r);
    // Only the fsynced numbers survive: the last fsync before the power loss.
    let written = before.len() as u64;
    assert_ne!(
        written % 4,
        0,
        "the test needs unsynced numbers at the crash"
    );
    assert_eq!(kept, written - written % 4);
    let last_fsync = commits(h, FSYNCED)
        .into_iter()
        .rfind(|(t, _)| *t <= DOWN_AT)
        .unwrap();
    assert_eq!(kept, last_fsync.1);
    // The pinger notices nothing while the machine is down; its first send after the restart
    // draws the reset (that number is lost with the old connection), the next one arrives.
    let first_up_tick = (0..150).find(|n| tick_ms(*n) > UP_AT).unwrap();
    assert_eq!(
        resets(h),
        vec![(tick_ms(first_up_tick) + RESET_NOTICE_MS, first_up_tick)]
    );
    assert_eq!(after.first().unwrap().n, first_up_tick + 1);
    assert_eq!(numbers(h).last(), Some(&149));
}

/// "After the fault window the nemesis heals everything": also a fault that lasts no time, and
/// one that starts where the window ends.
#[test]
fn a_fault_of_no_length_or_at_the_window_end_is_healed_before_the_drain() {
    let toy = Toy::new(150);
    let crash = FaultOp::Crash { target: receiver() };
    let plans = [
        schedule(2000, vec![fault(500, 0, crash.clone())]),
        schedule(1000, vec![fault(1000, 300, crash)]),
    ];
    // The last number the receiver got under each plan, and how many it got.
    let got: Vec<(Option<u32>, usize)> = plans
        .iter()
        .map(|plan| {
            let ns = numbers(&run(&toy, 5, plan, false).history);
            (ns.last().copied(), ns.len())
        })
        .collect();
    assert!(
        got.iter().all(|(last, _)| *last == Some(149)),
        "the receiver is still down during the drain: (last number, count) = {got:?} for {plans:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Pause.

#[test]
fn pause_holds_numbers_until_the_receiver_resumes_and_loses_none() {
    let toy = Toy::new(100);
    let (from, until) = (505, 805);
    let r = run(
        &toy,
        9,
        &schedule(
            1500,
            vec![fault(
                from,
                until - from,
                FaultOp::Pause { target: receiver() },
            )],
        ),
        false,
    );
    let h = &r.history;
    assert_all_once_in_order_without_reset(h, 100);
    let ds = deliveries(h);
    // The paused receiver handles nothing; what was sent meanwhile arrives at the resume.
    assert!(!ds.iter().any(|d| (from + 1..until).contains(&d.time_ms)));
    let sent = sent_at(h);
    let held: Vec<&Delivery> = ds
        .iter()
        .filter(|d| (from..until).contains(&sent[&d.n]))
        .collect();
    assert_eq!(held.len(), 30);
    // The backlog is handled from the resume on. (madsim hands a node one queued packet per
    // simulated ms, last-in first, so the in-order release waits for the oldest one.)
    let last = until + held.len() as u64 + MAX_LATENCY_MS;
    assert!(
        held.iter().all(|d| (until..=last).contains(&d.time_ms)),
        "{held:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Clock.

/// The gaps between the receiver's periodic fsyncs (every 16 ms) when its clock runs at `rate`
/// from 400 to 800 ms: (gaps of fsyncs set while the clock was off, the others).
fn sync_gaps(rate: u32) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let toy = Toy {
        sync_every_ms: Some(16),
        flush_every: usize::MAX,
        ..Toy::new(100)
    };
    let r = run(
        &toy,
        2,
        &schedule(
            1500,
            vec![fault(
                400,
                400,
                FaultOp::Clock {
                    target: receiver(),
                    rate,
                },
            )],
        ),
        false,
    );
    assert_all_once_in_order_without_reset(&r.history, 100);
    let times: Vec<u64> = commits(&r.history, FSYNCED)
        .iter()
        .map(|(t, _)| *t)
        .collect();
    let (mut off, mut normal) = (BTreeSet::new(), BTreeSet::new());
    for w in times.windows(2) {
        // A timer is scaled when it is set: at the previous fsync.
        if (400..800).contains(&w[0]) {
            off.insert(w[1] - w[0]);
        } else if w[0] > 800 || w[1] < 400 {
            normal.insert(w[1] - w[0]);
        }
    }
    (off, normal)
}

#[test]
fn clock_fast_or_slow_scales_the_receiver_s_timers_by_its_rate() {
    assert_eq!(
        sync_gaps(2000),
        (
            BTreeSet::from([clock::scaled(16, 2000)]),
            BTreeSet::from([16])
        )
    );
    assert_eq!(
        sync_gaps(500),
        (
            BTreeSet::from([clock::scaled(16, 500)]),
            BTreeSet::from([16])
        )
    );
}

#[test]
fn a_pinger_whose_clock_runs_at_2000_per_mille_sends_twice_as_often() {
    let toy = Toy::new(200);
    let r = run(
        &toy,
        4,
        &schedule(
            2000,
            vec![fault(
                300,
                500,
                FaultOp::Clock {
                    target: Target::Node(PINGER),
                    rate: 2000,
                },
            )],
        ),
        false,
    );
    assert_all_once_in_order_without_reset(&r.history, 200);
    let times: Vec<u64> = sent_at(&r.history).values().copied().collect();
    let gaps = |range: std::ops::Range<u64>| -> BTreeSet<u64> {
        times
            .windows(2)
            .filter(|w| range.contains(&w[0]))
            .map(|w| w[1] - w[0])
            .collect()
    };
    assert_eq!(gaps(0..300), BTreeSet::from([INTERVAL_MS]));
    assert_eq!(gaps(301..800), BTreeSet::from([INTERVAL_MS / 2]));
    assert_eq!(gaps(801..1500), BTreeSet::from([INTERVAL_MS]));
}

// ---------------------------------------------------------------------------------------------
// Beyond TCP: duplication and reordering.

#[test]
fn duplicate_delivers_some_number_twice_but_loses_none() {
    let toy = Toy::new(50);
    let mut duplicated = 0;
    for seed in 1..=3 {
        // Numbers 0..=28 are sent while duplication is on; 29.. after it ends.
        let r = run(
            &toy,
            seed,
            &schedule(
                800,
                vec![fault(0, 295, FaultOp::Duplicate { per_mille: 500 })],
            ),
            false,
        );
        let sent = sent_at(&r.history);
        let counts = count_each(&numbers(&r.history));
        assert_eq!(counts.len(), 50, "seed {seed}: every number arrives");
        for (n, c) in &counts {
            assert!(*c <= 2, "seed {seed}: {n} arrived {c} times");
            if sent[n] > 295 {
                assert_eq!(*c, 1, "seed {seed}: {n} was sent after duplication ended");
            }
        }
        let twice: Vec<u32> = counts
            .iter()
            .filter(|(_, c)| **c == 2)
            .map(|(n, _)| *n)
            .collect();
        if !twice.is_empty() {
            duplicated += 1;
            let dups = check(Invariant::AtMostOnce, &r.history, &Toy::ordering());
            let flagged: Vec<u32> = dups.iter().map(|v| v.msgs[0].seq).collect();
            assert_eq!(flagged, twice, "seed {seed}");
            assert!(dups.iter().all(|v| v.kind == Kind::Duplicate));
        }
        assert!(check(Invariant::AtLeastOnce, &r.history, &Toy::ordering()).is_empty());
        assert_eq!(resets(&r.history), []);
    }
    assert!(duplicated >= 1, "no seed duplicated anything");
}

#[test]
fn reorder_breaks_fifo_and_nothing_else_does() {
    let toy = Toy::new(50);
    let mut reordered = 0;
    for seed in 1..=5 {
        let r = run(
            &toy,
            seed,
            &schedule(800, vec![fault(0, 800, FaultOp::Reorder)]),
            false,
        );
        let ns = numbers(&r.history);
        // Reordering delays packets, it drops and copies none.
        let counts = count_each(&ns);
        assert_eq!(counts.len(), 50, "seed {seed}: {ns:?}");
        assert!(counts.values().all(|c| *c == 1), "seed {seed}: {ns:?}");
        assert_eq!(resets(&r.history), []);
        if !increasing(&ns) {
            reordered += 1;
            assert!(kinds(&r, Invariant::Ordering).contains(&Kind::Reordered));
        }

        let calm = run(&toy, seed, &schedule(800, vec![]), false);
        assert_eq!(numbers(&calm.history), (0..50).collect::<Vec<_>>());
        assert!(check(Invariant::Ordering, &calm.history, &Toy::ordering()).is_empty());
    }
    assert!(reordered >= 1, "no seed reordered anything");
}

// ---------------------------------------------------------------------------------------------
// The nemesis's schedules and fault sets.

#[test]
fn schedules_are_a_function_of_the_seed() {
    let toy = Toy::new(50);
    let all = FaultSet::all();
    let window = toy.window.as_millis() as u64;
    let mut distinct = BTreeSet::new();
    for seed in 0..20 {
        let s = schedule_for(&toy, seed, &all);
        assert_eq!(s, schedule_for(&toy, seed, &all), "seed {seed}");
        assert!((window / 6..=window).contains(&s.window_ms), "{s:?}");
        assert!((3..=15).contains(&s.faults.len()), "{s:?}");
        assert!(s.faults.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        for f in &s.faults {
            assert!(f.at_ms < s.window_ms);
            assert!((500..=45_000).contains(&f.for_ms));
            if let FaultOp::Crash { target }
            | FaultOp::Power { target }
            | FaultOp::Pause { target }
            | FaultOp::Clock { target, .. } = f.op
            {
                // Only the receiver may crash or pause; the pinger is a producer.
                assert_ne!(target, Target::Node(PINGER), "{s:?}");
            }
        }
        distinct.insert(format!("{s:?}"));
    }
    assert!(
        distinct.len() >= 19,
        "20 seeds drew {} schedules",
        distinct.len()
    );

    // Only the allowed faults, and none at all for `none`.
    let some: FaultSet = "crash,loss".parse().unwrap();
    for seed in 0..20 {
        let s = schedule_for(&toy, seed, &some);
        assert!(s
            .faults
            .iter()
            .all(|f| matches!(f.op, FaultOp::Crash { .. } | FaultOp::Loss { .. })));
        let none = schedule_for(&toy, seed, &FaultSet::default());
        assert!(none.faults.is_empty());
    }
    // The cast the nemesis sees: both names, only the receiver faulty, and it is a client.
    let c = cast(&toy);
    assert_eq!(c.names, ["pinger", "receiver"]);
    assert_eq!(c.faulty, [RECEIVER]);
    assert_eq!(c.clients, [RECEIVER]);
}

#[test]
fn fault_sets_parse_and_name_what_they_reject() {
    let all: FaultSet = "all".parse().unwrap();
    assert_eq!(all, FaultSet::all());
    assert_eq!(all.0.len(), 8);
    assert_eq!(all.to_string(), "all");
    let tcp: FaultSet = "tcp".parse().unwrap();
    assert!(!tcp.contains(Fault::Duplicate) && !tcp.contains(Fault::Reorder));
    assert_eq!(tcp.to_string(), "tcp");
    let none: FaultSet = "none".parse().unwrap();
    assert!(none.0.is_empty());
    assert_eq!(none.to_string(), "none");
    let some: FaultSet = "crash,loss".parse().unwrap();
    assert_eq!(some.names(), ["crash", "loss"]);
    assert_eq!(some.to_string(), "crash,loss");
    assert_eq!(" loss , crash ".parse::<FaultSet>().unwrap(), some);
    // Every name round-trips.
    for name in FaultSet::all().names() {
        assert_eq!(name.parse::<FaultSet>().unwrap().to_string(), name);
    }
    let err = "crash,meteor".parse::<FaultSet>().unwrap_err();
    assert!(err.contains("'meteor'"), "{err}");
    assert!(
        err.contains("partition"),
        "the error lists the allowed names: {err}"
    );
    assert!("Crash".parse::<FaultSet>().is_err());
}

// ---------------------------------------------------------------------------------------------
// Shrinking and the swarm.

#[test]
fn shrink_keeps_the_fault_that_matters_and_drops_the_rest() {
    let toy = Toy::new(50);
    let seed = 11;
    let original = schedule(
        8000,
        vec![
            fault(0, 4000, FaultOp::Reorder),
            fault(100, 2000, FaultOp::Loss { per_mille: 0 }),
            // Aimed at the leader: nobody leads, so it hits a live server — and there is none.
            fault(
                200,
                3000,
                FaultOp::Crash {
                    target: Target::Leader,
                },
            ),
            // After the last number arrived: nothing left to disturb.
            fault(
                3000,
                2000,
                FaultOp::Partition {
                    split: Split::Halves(vec![RECEIVER]),
                },
            ),
            fault(5000, 2000, FaultOp::Crash { target: receiver() }),
        ],
    );
    let r = run(&toy, seed, &original, false);
    assert!(kinds(&r, Invariant::Ordering).contains(&Kind::Reordered));

    let minimal = shrink(&toy, seed, &original, Invariant::Ordering, 100);
    assert_eq!(minimal.window_ms, original.window_ms);
    assert_eq!(minimal.faults.len(), 1, "{minimal:?}");
    assert_eq!(minimal.faults[0].op, FaultOp::Reorder);
    assert_eq!(minimal.faults[0].at_ms, 0);
    assert!(
        minimal.faults[0].for_ms <= 1000,
        "halved while > 1 s: {minimal:?}"
    );
    let again = run(&toy, seed, &minimal, false);
    assert!(!check(Invariant::Ordering, &again.history, &Toy::ordering()).is_empty());
    // Shrinking is deterministic too.
    assert_eq!(
        shrink(&toy, seed, &original, Invariant::Ordering, 100),
        minimal
    );
}

#[test]
fn sweep_under_every_fault_keeps_the_toys_guarantee_and_is_deterministic() {
    let toy = Toy {
        window: Duration::from_secs(3),
        ..Toy::new(60)
    };
    let checks = [Invariant::AtLeastOnce];
    let each = |seeds: std::ops::Range<u64>| {
        let results = std::sync::Mutex::new(Vec::new());
        let tally = sweep(&toy, seeds, &FaultSet::all(), &checks, &|r| {
            results.lock().unwrap().push(r.clone());
            true
        });
        let mut results = results.into_inner().unwrap();
        results.sort_by_key(|r| r.seed);
        (tally, results)
    };
    let (tally_a, a) = each(0..16);
    let (tally_b, b) = each(0..16);
    assert_eq!(tally_a, tally_b);
    assert_eq!(tally_a.runs, 16);
    assert_eq!(
        a.iter().map(|r| r.seed).collect::<Vec<_>>(),
        (0..16).collect::<Vec<_>>()
    );
    // The tally does not depend on the order runs finish in.
    let mut reversed = mqcheck_sim::Tally::default();
    for r in a.iter().rev() {
        reversed.add(r);
    }
    assert_eq!(reversed, tally_a);
    // A sweep told to stop starts no further seed.
    let stopped = sweep(&toy, 0..1000, &FaultSet::all(), &checks, &|_| false);
    assert!(stopped.runs < 1000 && stopped.runs >= 1, "{}", stopped.runs);
    for (x, y) in a.iter().zip(&b) {
        // An ack follows a recorded delivery, whatever the faults.
        assert!(
            x.violations.is_empty(),
            "seed {}: {:?}",
            x.seed,
            x.violations
        );
        assert_eq!(
            (x.simulated_ms, x.delivered, x.deliveries),
            (y.simulated_ms, y.delivered, y.deliveries)
        );
        // The same seed run alone gives the same result.
        let s = schedule_for(&toy, x.seed, &FaultSet::all());
        let r = run(&toy, x.seed, &s, false);
        assert_eq!(r.history.deliveries(), x.deliveries);
        // The window, the drain, and a ms for each nemesis step due at an instant already
        // reached (madsim's minimum sleep).
        let steps = 2 * s.faults.len() as u64 + 1;
        assert!(
            (s.window_ms + 1000..=s.window_ms + 1000 + steps).contains(&r.simulated_ms),
            "seed {}: {} ms",
            x.seed,
            r.simulated_ms
        );
    }
}
