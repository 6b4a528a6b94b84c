//! RocketMQ fault scenarios: each documented anomaly is found, each documented guarantee holds,
//! through the same code path as the CLI (`mqcheck sim … --json`, `mqcheck replay`).

use crate::common::{
    assert_deterministic, bad_input, check, held, mqcheck, reproduce, sim, violated,
};
/// `mqcheck replay --broker rocketmq ARGS --seed SEED`'s standard output.
fn replay(args: &str, seed: u64) -> String {
    let mut words = vec!["replay", "--full", "--broker", "rocketmq"];
    words.extend(args.split_whitespace());
    let seed = seed.to_string();
    words.extend(["--check", "at-least-once", "--seed", &seed]);
    mqcheck(&words).stdout
}

/// How many times a replay's timeline shows `msg` handed to the application.
fn deliveries(timeline: &str, msg: &str) -> usize {
    let needle = format!("app: deliver {msg} ");
    timeline.lines().filter(|l| l.contains(&needle)).count()
}

#[test]
fn async_flush_loses_acknowledged_messages_on_power_loss_and_sync_flush_does_not() {
    let v = violated(
        "--broker rocketmq --set flushDiskType=ASYNC_FLUSH --faults power --seeds 100",
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost");
    reproduce(&v);
    let json = held(
        "--broker rocketmq --set flushDiskType=SYNC_FLUSH --faults power --seeds 100",
        &["at-least-once"],
    );
    assert!(json["stats"]["messages_delivered"].as_u64().unwrap() >= 100 * 90);
}

/// The documented guarantee: SYNC_MASTER and SYNC_FLUSH keep every SEND_OK message through
/// crashes, pauses, partitions and loss, in both versions.
#[test]
fn sync_master_with_sync_flush_keeps_every_send_ok_message() {
    for version in ["5.3", "4.9"] {
        let json = held(
            &format!(
                "--broker rocketmq --set version={version} --set brokerRole=SYNC_MASTER \
                 --set flushDiskType=SYNC_FLUSH --faults crash,pause,partition,loss --seeds 150"
            ),
            &["at-least-once"],
        );
        assert!(json["coverage"]["acknowledged"].as_u64().unwrap() > 150 * 50);
    }
}

/// 5.x SYNC_MASTER waits for `inSyncReplicas` acknowledgements, the master's own included:
/// with the default 1 it answers SEND_OK without a slave, with 2 it waits and times out. 4.9
/// answers SLAVE_NOT_AVAILABLE at once when no slave is connected.
#[test]
fn sync_master_waits_for_a_slave_as_each_version_says() {
    // sendMsgTimeout above slaveTimeout, or the client gives up before the broker answers.
    let base = "--set brokerRole=SYNC_MASTER --set slavesPerGroup=0 --set sendMsgTimeout=5000 \
                --faults none --messages 5";
    let isr1 = replay(base, 0);
    assert!(isr1.contains("SendResult SEND_OK"), "{isr1}");
    assert!(!isr1.contains("FLUSH_SLAVE_TIMEOUT"));
    let isr2 = replay(&format!("{base} --set inSyncReplicas=2"), 0);
    assert!(isr2.contains("SendResult FLUSH_SLAVE_TIMEOUT"), "{isr2}");
    assert!(!isr2.contains("SendResult SEND_OK"));
    assert!(isr2.contains("app: fail p0:0: SendResult FLUSH_SLAVE_TIMEOUT"));
    // An application that counts any SendResult as sent (OpenChaos' driver) acknowledges it.
    let any = replay(
        &format!("{base} --set inSyncReplicas=2 --set producer.accept=any"),
        0,
    );
    assert!(any.contains("app: ack p0:0"), "{any}");
    let v49 = replay(&format!("{base} --set version=4.9"), 0);
    assert!(v49.contains("SendResult SLAVE_NOT_AVAILABLE"), "{v49}");
}

/// A status other than SEND_OK means the master stored the message: retried on another broker
/// group (`retryAnotherBrokerWhenNotStoreOK`), it is stored once per attempt. A SYNC_MASTER
/// waiting for a slave it does not have answers FLUSH_SLAVE_TIMEOUT every time.
#[test]
fn retrying_a_stored_message_stores_it_again() {
    let base = "--set brokerRole=SYNC_MASTER --set inSyncReplicas=2 --set slavesPerGroup=0 \
                --set sendMsgTimeout=10000 --faults none --messages 3";
    let copies = |retry: &str| {
        let timeline = replay(
            &format!("{base} --set retryAnotherBrokerWhenNotStoreOK={retry}"),
            0,
        );
        deliveries(&timeline, "p0:0")
    };
    // Three attempts (retryTimesWhenSendFailed=2), each stored, on alternating broker groups;
    // without faults nothing is consumed twice but what is stored twice.
    assert_eq!(copies("true"), 3, "stored on each attempt");
    assert_eq!(copies("false"), 1);
    // Under crashes and partitions the duplicates the contract asks for show up.
    violated(
        "--broker rocketmq --set retryTimesWhenSendFailed=2 --faults crash,partition --seeds 100",
        "at-most-once",
    );
}

/// The concurrent consumer commits the lowest unfinished offset every 5 s: after a crash
/// everything above it is consumed again, from the same positions.
#[test]
fn concurrent_consumer_redelivers_after_a_crash() {
    let v = violated(
        "--broker rocketmq --faults crash --seeds 100",
        "at-most-once",
    );
    assert!(
        v["explanation"]
            .as_str()
            .unwrap()
            .contains("consumed again from the same position"),
        "{v}"
    );
    reproduce(&v);
}

/// Twenty consume threads over a backlog finish out of order, without any fault.
#[test]
fn concurrent_consumer_reorders_without_faults() {
    let v = violated(
        "--broker rocketmq --faults none --consumer-delay-ms 3000 --seeds 5",
        "ordering",
    );
    reproduce(&v);
}

/// A MessageQueueSelector sends each key to one queue and an orderly listener consumes each
/// queue in order under the broker's lock: per-key order holds while the queue list is stable,
/// with two consumers sharing the queues.
#[test]
fn orderly_listener_with_a_selector_keeps_per_key_order() {
    held(
        "--broker rocketmq --set producer.selector=hash --set consumer.listener=orderly --keys 4 \
         --consumers 2 --consumer-delay-ms 3000 --faults none --seeds 20",
        &["ordering", "at-least-once", "at-most-once"],
    );
}

#[test]
fn rocketmq_runs_are_deterministic() {
    assert_deterministic("--broker rocketmq");
    assert_deterministic("--broker rocketmq --set transaction=rollback-some");
}

#[test]
fn combinations_rocketmq_refuses_are_bad_input() {
    for (set, key) in [
        ("brokerRole=SLAVE", "brokerRole"),
        ("brokerRole=MASTER", "brokerRole"),
        ("consumer.listener=parallel", "consumer.listener"),
        ("transaction=half", "transaction"),
    ] {
        let out = mqcheck(&["sim", "--broker", "rocketmq", "--set", set]);
        assert_eq!(out.code, 2, "{set}: {}", out.stderr);
        assert!(out.stderr.contains(key), "{set}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
    }
    let out = mqcheck(&[
        "sim",
        "--broker",
        "rocketmq",
        "--set",
        "version=4.9",
        "--set",
        "inSyncReplicas=2",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("inSyncReplicas"), "{}", out.stderr);
    bad_input(
        &[
            "sim",
            "--broker",
            "rocketmq",
            "--set",
            "transaction=prepare",
        ],
        "transaction",
    );
    let out = mqcheck(&["sim", "--broker", "rocketmq", "--set", "transaction=yes"]);
    assert!(
        out.stderr.contains("none, commit, rollback-some"),
        "names the allowed values: {}",
        out.stderr
    );
    // sendMessageInTransaction takes no MessageQueueSelector.
    bad_input(
        &[
            "sim",
            "--broker",
            "rocketmq",
            "--set",
            "transaction=commit",
            "--set",
            "producer.selector=hash",
        ],
        "producer.selector",
    );
}

/// The model checker: with SYNC_FLUSH and crashes, every state keeps the ConsumeQueues below
/// the dispatch bound and no acknowledged message is lost; one broker without a slave under
/// ASYNC_FLUSH loses one to a power loss.
#[test]
fn check_holds_the_dispatch_bound_and_finds_the_async_flush_loss() {
    let (code, json) =
        check("--broker rocketmq --set flushDiskType=SYNC_FLUSH --faults crash --messages 1");
    assert_eq!(code, 0, "{json}");
    for name in ["DispatchBound", "at-least-once"] {
        assert_eq!(json["properties"][name]["held"], true, "{name}: {json}");
    }
    // Not trivially small: the states stored and the steps the reduction followed between them.
    let steps = json["states"].as_u64().unwrap() + json["followed_steps"].as_u64().unwrap();
    assert!(steps > 300_000, "{steps} steps");
    let (code, json) = check(
        "--broker rocketmq --set brokerGroups=1 --set slavesPerGroup=0 --faults power --messages 1",
    );
    assert_eq!(code, 1);
    assert_eq!(json["properties"]["at-least-once"]["held"], false);
    assert_eq!(json["properties"]["DispatchBound"]["held"], true);
}

/// A handler that returns RECONSUME_LATER sends the message back: to `%RETRY%` after delay level
/// 3 + reconsumeTimes, and after `maxReconsumeTimes` (16) send-backs to `%DLQ%`, which no
/// consumer reads: the checker names the dead-letter.
#[test]
fn a_message_failing_sixteen_times_is_dead_lettered() {
    held(
        "--broker rocketmq --set consumer.reconsume=every-tenth --faults none --seeds 5",
        &["at-least-once", "at-most-once"],
    );
    let v = violated(
        "--broker rocketmq --set consumer.reconsume=poison-tenth --set messageDelayLevel.divisor=1000 \
         --faults none --seeds 2",
        "at-least-once",
    );
    let why = v["explanation"].as_str().unwrap();
    assert!(why.contains("%DLQ% after 17 send-backs"), "{v}");
    assert_eq!(v["kind"], "dead-lettered", "{v}");
}

/// BROADCASTING: every consumer gets every message (each is its own audience), from offset 0
/// with CONSUME_FROM_FIRST_OFFSET, through faults the offsets survive.
#[test]
fn broadcasting_delivers_every_message_to_every_consumer() {
    let json = held(
        "--broker rocketmq --set messageModel=BROADCASTING \
         --set consumeFromWhere=CONSUME_FROM_FIRST_OFFSET --consumers 2 --faults none --seeds 20",
        &["at-least-once", "at-most-once"],
    );
    assert_eq!(json["stats"]["messages_delivered"], 20 * 100 * 2);
}

/// BROADCASTING keeps offsets in a local file written every 5 s: a restarted consumer reads
/// again from the file's offsets (from 0 when it had not written one yet), so a consumer crash
/// hands messages to it twice.
#[test]
fn a_broadcasting_consumer_reads_again_after_a_crash() {
    let v = violated(
        "--broker rocketmq --set messageModel=BROADCASTING \
         --set consumeFromWhere=CONSUME_FROM_FIRST_OFFSET --consumers 2 --faults crash --seeds 50",
        "at-most-once",
    );
    assert!(
        v["explanation"]
            .as_str()
            .unwrap()
            .contains("consumed again from the same position"),
        "{v}"
    );
    reproduce(&v);
}

/// With the default CONSUME_FROM_LAST_OFFSET a queue without a local offset starts at the
/// broker's max offset: a consumer that crashes before its first write of offsets.json, or
/// starts after the first sends, never gets what came before. The other consumer does.
#[test]
fn a_broadcasting_consumer_without_local_offsets_starts_at_the_end() {
    let v = violated(
        "--broker rocketmq --set messageModel=BROADCASTING --consumers 2 --faults crash --seeds 50",
        "at-least-once",
    );
    let why = v["explanation"].as_str().unwrap();
    assert!(why.contains("(other groups did)"), "{v}");
    reproduce(&v);
}

/// BROADCASTING has no `%RETRY%` topic: a message its handler fails is dropped, where
/// CLUSTERING sends it back and delivers it later.
#[test]
fn broadcasting_drops_a_message_its_handler_failed() {
    let base = "--set consumeFromWhere=CONSUME_FROM_FIRST_OFFSET \
                --set consumer.reconsume=every-tenth --consumers 2 --faults none --seeds 5";
    held(
        &format!("--broker rocketmq --set messageModel=CLUSTERING {base}"),
        &["at-least-once"],
    );
    let v = violated(
        &format!("--broker rocketmq --set messageModel=BROADCASTING {base}"),
        "at-least-once",
    );
    let why = v["explanation"].as_str().unwrap();
    assert!(
        why.contains(
            "never delivered it; it was discarded: BROADCASTING drops a message its handler failed"
        ),
        "{v}"
    );
    reproduce(&v);
}

/// Transactional messages: each transaction is one half message, made visible by COMMIT, so
/// committed transactions are delivered (at-least-once, through the check-back when the end
/// request is lost) and atomicity has nothing to tear: it holds under crashes in both
/// versions (4.9 writes op messages at once, 5.x in batches).
#[test]
fn committed_transactions_are_delivered_under_crashes() {
    for version in ["5.3", "4.9"] {
        let json = held(
            &format!("--broker rocketmq --set version={version} --set transaction=commit --faults crash --seeds 150"),
            &["at-least-once", "atomicity"],
        );
        let coverage = &json["coverage"];
        assert!(
            coverage["atomic_units"].as_u64().unwrap() > 150 * 50,
            "{coverage}"
        );
        assert!(json["invariants"]["atomicity"]["tested"] == true, "{json}");
    }
}

/// `rollback-some`: every fifth local transaction rolls back, and its half message is never
/// delivered, whatever the faults — an aborted read would break atomicity.
#[test]
fn rolled_back_transactions_are_never_delivered() {
    held(
        "--broker rocketmq --set transaction=rollback-some --faults crash,partition,pause,loss --seeds 150",
        &["atomicity", "at-least-once"],
    );
    // Without faults exactly the four fifths committed reach the consumer, once each.
    let json = held(
        "--broker rocketmq --set transaction=rollback-some --faults none --seeds 5",
        &["atomicity", "at-least-once", "at-most-once"],
    );
    assert_eq!(json["stats"]["messages_delivered"], 5 * 80, "{json}");
}

/// The master crashes with the one-way END_TRANSACTION of p0:16 in flight: it never arrives,
/// and the half message waits until a check round asks the producer, whose log says it
/// committed; its answer delivers the message.
#[test]
fn a_lost_end_request_is_resolved_by_the_check_back() {
    let timeline = replay("--set transaction=commit --faults crash", 9);
    let ends: Vec<&str> = timeline
        .lines()
        .filter(|l| l.contains("END_TRANSACTION") && l.contains(" p0:16 "))
        .collect();
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!(ends[0].contains("COMMIT_MESSAGE") && ends[0].contains("(check-back answer)"));
    assert!(
        timeline.contains("CHECK_TRANSACTION_STATE p0:16 "),
        "{timeline}"
    );
    assert!(timeline.contains("app: transaction 16 [p0:16] committed"));
    assert!(deliveries(&timeline, "p0:16") >= 1);
}

/// The anomaly: a committed transaction whose end request was lost is checked back at most
/// `transactionCheckMax` times, then discarded to TRANS_CHECK_MAX_TIME_TOPIC. A restarted
/// master knows no producer until its next heartbeat (30 s), so with checks every 2 s and a
/// check max of 1 the committed message is never delivered; with the default 15 checks the
/// same run delivers it.
#[test]
fn a_committed_transaction_checked_transaction_check_max_times_is_lost() {
    let args = "--broker rocketmq --set transaction=commit --set transactionCheckInterval=2000 \
                --faults crash --seeds 100";
    let v = violated(
        &format!("{args} --set transactionCheckMax=1"),
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost", "{v}");
    reproduce(&v);
    let seed = v["seed"].as_u64().unwrap();
    let lost = v["explanation"]
        .as_str()
        .and_then(|e| e.split_whitespace().next())
        .unwrap()
        .to_string();
    let again = replay(
        "--set transaction=commit --set transactionCheckInterval=2000 --faults crash",
        seed,
    );
    assert!(
        deliveries(&again, &lost) >= 1,
        "{lost} delivered with 15 checks"
    );
    let (code, _) = sim(&format!(
        "{args} --set transactionCheckMax=15 --check at-least-once"
    ));
    assert_eq!(code, 0);
}

/// Replay by time (`--rewind`): an orderly consumer resets its group's offset by time
/// (`resetOffsetByTime`) to the storeTimestamp of the message it read ten back, and reads again.
const ORDERLY_REWINDING: &str =
    "--broker rocketmq --set producer.selector=hash --set consumer.listener=orderly --rewind 10 --messages 40";

#[test]
fn a_consumer_reset_by_time_rereads_the_same_messages_in_both_versions() {
    for version in ["5.3", "4.9"] {
        let json = held(
            &format!("{ORDERLY_REWINDING} --set version={version} --faults crash,pause,partition,loss,clock --seeds 40"),
            &["replay"],
        );
        let (sends, delivered) = (
            json["coverage"]["sends"].as_u64().unwrap(),
            json["coverage"]["delivered"].as_u64().unwrap(),
        );
        assert!(
            delivered > sends + sends / 4,
            "{version}: the consumers re-read after the reset: {delivered} deliveries of {sends} sends"
        );
    }
    // Each version's own path, in the timeline.
    let run = |version: &str| {
        let line = format!("replay --full {ORDERLY_REWINDING} --set version={version} --faults none --check replay --seed 1");
        mqcheck(&line.split_whitespace().collect::<Vec<_>>()).stdout
    };
    let v53 = run("5.3");
    assert!(v53.contains("INVOKE_BROKER_TO_RESET_OFFSET"), "{v53}");
    assert!(v53.contains("OFFSET_MOVED"), "{v53}");
    assert!(!v53.contains("RESET_CONSUMER_CLIENT_OFFSET"), "{v53}");
    assert!(v53.contains("app: rewind scope"), "{v53}");
    let v49 = run("4.9");
    assert!(v49.contains("RESET_CONSUMER_CLIENT_OFFSET"), "{v49}");
    assert!(v49.contains("app: rewind scope"), "{v49}");
}

#[test]
fn async_flush_power_loss_rewrites_positions_a_reset_consumer_had_read() {
    let v = violated(
        &format!("{ORDERLY_REWINDING} --set flushDiskType=ASYNC_FLUSH --faults power --seeds 40"),
        "replay",
    );
    assert_eq!(v["kind"], "inconsistent-offsets", "{v}");
    let r = reproduce(&v);
    assert!(r.stdout.contains("was read as"), "{}", r.stdout);
    // SYNC_FLUSH keeps every position through the same power losses.
    held(
        &format!("{ORDERLY_REWINDING} --set flushDiskType=SYNC_FLUSH --faults power --seeds 40"),
        &["replay"],
    );
}

#[test]
fn rewinding_is_refused_where_rocketmq_consumers_cannot_replay() {
    // Concurrent consumers (the default listener) and BROADCASTING.
    bad_input(
        &["sim", "--broker", "rocketmq", "--rewind", "10"],
        "consumer.listener",
    );
    bad_input(
        &[
            "sim",
            "--broker",
            "rocketmq",
            "--set",
            "consumer.listener=orderly",
            "--set",
            "messageModel=BROADCASTING",
            "--rewind",
            "10",
        ],
        "messageModel",
    );
    // Without --rewind the replay check has nothing to judge.
    bad_input(
        &[
            "sim",
            "--broker",
            "rocketmq",
            "--set",
            "consumer.listener=orderly",
            "--check",
            "replay",
        ],
        "--rewind",
    );
}

/// One DLedger group of three brokers (`enableDLegerCommitLog`).
const DLEDGER: &str = "--set enableDLegerCommitLog=true --set slavesPerGroup=2 \
                       --set brokerGroups=1";

/// DLedger's guarantee: a SEND_OK entry is on a majority, every later leader's ledger holds it
/// (the vote refuses candidates whose ledger is behind), and a crash keeps the page cache: no
/// acknowledged message is lost through crashes (the leader's too), pauses, partitions and loss,
/// and the group elects new leaders as it goes.
#[test]
fn dledger_keeps_acknowledged_messages_through_leader_crashes() {
    let json = held(
        &format!("--broker rocketmq {DLEDGER} --faults crash,pause,partition,loss --seeds 200"),
        &["at-least-once"],
    );
    let coverage = &json["coverage"];
    assert!(
        coverage["acknowledged"].as_u64().unwrap() > 200 * 60,
        "{coverage}"
    );
    assert!(
        coverage["leader_elections"].as_u64().unwrap() > 100,
        "{coverage}"
    );
    // Only leader crashes, and three producers keeping entries in flight: still held.
    held(
        &format!("--broker rocketmq {DLEDGER} --faults crash --producers 3 --rate 200 --seeds 100"),
        &["at-least-once"],
    );
}

/// DLedger acknowledges before it fsyncs (`flushFileInterval`, 10 ms): a power loss of the
/// majority that acknowledged an entry takes it, and when the restarted majority elects one of
/// its own the new leader truncates the third copy. Without power losses the same load holds.
#[test]
fn dledger_loses_acknowledged_messages_when_a_majority_loses_power() {
    let load = "--producers 3 --rate 200";
    let v = violated(
        &format!("--broker rocketmq {DLEDGER} {load} --faults power --seeds 250"),
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost", "{v}");
    reproduce(&v);
    held(
        &format!("--broker rocketmq {DLEDGER} {load} --faults crash --seeds 250"),
        &["at-least-once"],
    );
}

/// The leader is elected, not configured: after the first leader's crash another broker of the
/// group becomes master and takes the sends (the producer learns it from the route).
#[test]
fn dledger_fails_over_to_an_elected_leader() {
    // Seed 5: a1 leads, crashes, and a2 is elected; a message a second so the run spans both.
    let timeline = replay(
        &format!("{DLEDGER} --faults crash --messages 40 --rate 1"),
        5,
    );
    assert!(
        timeline.contains("DLedger VoteResponse Accept"),
        "{timeline}"
    );
    let masters: std::collections::BTreeSet<&str> = timeline
        .lines()
        .filter(|l| l.contains("<- p0: SEND_MESSAGE"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(masters.len() >= 2, "sends went to {masters:?}");
}

#[test]
fn dledger_runs_are_deterministic_and_its_bad_input_is_refused() {
    assert_deterministic(
        "--broker rocketmq --set enableDLegerCommitLog=true --set slavesPerGroup=2",
    );
    bad_input(
        &[
            "sim",
            "--broker",
            "rocketmq",
            "--set",
            "enableDLegerCommitLog=yes",
        ],
        "enableDLegerCommitLog",
    );
    // BrokerStartup checks a SLAVE's brokerId before DLedger overrides it.
    bad_input(
        &[
            "sim",
            "--broker",
            "rocketmq",
            "--set",
            "enableDLegerCommitLog=true",
            "--set",
            "brokerRole=SLAVE",
        ],
        "brokerRole",
    );
}

/// The model checker over one DLedger group: three nodes through a crash keep the message and
/// never have two leaders of a term; one node alone acknowledges before its flush, and a power
/// loss takes the message.
#[test]
fn check_holds_dledger_election_safety_and_finds_the_unflushed_ack() {
    let one_group = "--broker rocketmq --set enableDLegerCommitLog=true --set brokerGroups=1 \
                     --messages 1";
    let (code, json) = check(&format!(
        "{one_group} --set slavesPerGroup=2 --faults crash"
    ));
    assert_eq!(code, 0, "{json}");
    for name in ["DLedgerElectionSafety", "DispatchBound", "at-least-once"] {
        assert_eq!(json["properties"][name]["held"], true, "{name}: {json}");
    }
    assert!(json["unique_states"].as_u64().unwrap() > 10_000, "{json}");
    let (code, json) = check(&format!(
        "{one_group} --set slavesPerGroup=0 --faults power"
    ));
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["properties"]["at-least-once"]["held"], false);
    assert_eq!(json["properties"]["DLedgerElectionSafety"]["held"], true);
}

/// Controller mode (5.x, `enableControllerMode`): the controller keeps each group's
/// SyncStateSet and elects a new master from it.
const CONTROLLER: &str = "--broker rocketmq --set enableControllerMode=true";

/// `allAckInSyncStateSet=true`: a put is answered once every member of the SyncStateSet has it,
/// and a lost master is replaced by a member: no acknowledged message is lost through master
/// crashes and partitions, and the groups fail over as they go. Without it (the default) the
/// master answers alone and dispatches what its slave may not have: a master paused through a
/// failover comes back as a slave, its consumers had read past what the new master holds at
/// those positions, and an acknowledged message is skipped.
#[test]
fn controller_mode_with_all_ack_keeps_acknowledged_messages_through_failovers() {
    let json = held(
        &format!(
            "{CONTROLLER} --set allAckInSyncStateSet=true --faults crash,partition --seeds 100"
        ),
        &["at-least-once"],
    );
    let coverage = &json["coverage"];
    assert!(
        coverage["acknowledged"].as_u64().unwrap() > 100 * 60,
        "{coverage}"
    );
    assert!(
        coverage["leader_elections"].as_u64().unwrap() > 100,
        "{coverage}"
    );
    let v = violated(
        &format!("{CONTROLLER} --faults pause --seeds 100"),
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost", "{v}");
    reproduce(&v);
}

/// `enableElectUncleanMaster=true`: when no member of the SyncStateSet is alive the controller
/// elects any live replica, which lacks what the old master acknowledged alone; the old master
/// comes back as its slave and truncates to their epoch boundary. The same runs with the
/// default (`false`) wait for a member instead, and lose nothing.
#[test]
fn an_unclean_master_election_loses_acknowledged_messages() {
    let base = format!("{CONTROLLER} --set allAckInSyncStateSet=true --faults crash --seeds 100");
    let v = violated(
        &format!("{base} --set enableElectUncleanMaster=true"),
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost", "{v}");
    reproduce(&v);
    held(&base, &["at-least-once"]);
}

/// The model checker over one group in controller mode: every master the controller elects
/// comes from the SyncStateSet, and a broker master in the current epoch is the controller's;
/// `enableElectUncleanMaster=true` breaks the first part (the master crashes before its slave
/// joined the set, and the slave is elected from outside it).
#[test]
fn check_finds_masters_from_the_sync_state_set_unless_unclean() {
    let one_group = format!(
        "{CONTROLLER} --set allAckInSyncStateSet=true --set brokerGroups=1 --messages 1 --faults crash"
    );
    let (code, json) = check(&one_group);
    assert_eq!(code, 0, "{json}");
    for name in [
        "ControllerMasterInSyncStateSet",
        "DispatchBound",
        "at-least-once",
    ] {
        assert_eq!(json["properties"][name]["held"], true, "{name}: {json}");
    }
    assert!(json["unique_states"].as_u64().unwrap() > 10_000, "{json}");
    let (code, json) = check(&format!("{one_group} --set enableElectUncleanMaster=true"));
    assert_eq!(code, 1, "{json}");
    assert_eq!(
        json["properties"]["ControllerMasterInSyncStateSet"]["held"], false,
        "{json}"
    );
}

/// `transientStorePoolEnable`: puts are answered from an off-heap buffer that is committed to
/// the page cache every 200 ms, so a process crash alone loses acknowledged messages, where the
/// default store keeps them (the page cache survives). With SYNC_FLUSH (5.3) the put waits for
/// the commit and the flush: nothing lost.
#[test]
fn the_transient_store_pool_loses_acknowledged_messages_on_a_crash() {
    let v = violated(
        "--broker rocketmq --set transientStorePoolEnable=true --faults crash --seeds 50",
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost", "{v}");
    reproduce(&v);
    held(
        "--broker rocketmq --faults crash --seeds 50",
        &["at-least-once"],
    );
    held(
        "--broker rocketmq --set transientStorePoolEnable=true --set flushDiskType=SYNC_FLUSH \
         --faults crash --seeds 50",
        &["at-least-once"],
    );
}

#[test]
fn controller_mode_runs_are_deterministic_and_its_bad_input_is_refused() {
    assert_deterministic(&format!("{CONTROLLER} --set transientStorePoolEnable=true"));
    // BrokerStartup: exit -4.
    bad_input(
        &[
            "sim",
            "--broker",
            "rocketmq",
            "--set",
            "enableControllerMode=true",
            "--set",
            "enableDLegerCommitLog=true",
        ],
        "enableControllerMode",
    );
    // 4.9 has no controller.
    for key in [
        "enableControllerMode=true",
        "allAckInSyncStateSet=true",
        "minInSyncReplicas=2",
    ] {
        bad_input(
            &[
                "sim",
                "--broker",
                "rocketmq",
                "--set",
                "version=4.9",
                "--set",
                key,
            ],
            key.split('=').next().unwrap(),
        );
    }
    // The controller's own key, without a controller.
    bad_input(
        &[
            "sim",
            "--broker",
            "rocketmq",
            "--set",
            "enableElectUncleanMaster=true",
        ],
        "enableElectUncleanMaster",
    );
    bad_input(
        &[
            "sim",
            "--broker",
            "rocketmq",
            "--set",
            "transientStorePoolEnable=maybe",
        ],
        "transientStorePoolEnable",
    );
}
