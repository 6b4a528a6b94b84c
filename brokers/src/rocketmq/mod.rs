//! Apache RocketMQ (4.9 and 5.3): a NameServer, broker groups of a master and its slaves, each
//! with one CommitLog and the ConsumeQueues that index it, producers that retry on another
//! broker group, and push consumers that rebalance queues among themselves.
//!
//! # The mechanism
//!
//! ## Routes
//!
//! The NameServer (`namesrv/.../RouteInfoManager`) is reliable infrastructure. Every broker
//! registers with it every `registerNameServerPeriod` (30 s, `BrokerController.start`); it
//! drops a broker at once when the broker's connection closes (`onChannelDestroy`) and after
//! 120 s of silence (`scanNotActiveBroker`). Clients fetch the topic's route every
//! `pollNameServerInterval` (30 s, `MQClientInstance.updateTopicRouteInfoFromNameServer`): a
//! producer writes only to groups whose master is in its route (`topicRouteData2TopicPublishInfo`),
//! a consumer reads every group with a live broker. So a producer's queue list changes late,
//! and differently from a consumer's.
//!
//! ## The store
//!
//! A broker appends every message of every queue to one [`store::CommitLog`]
//! (`CommitLog.asyncPutMessage`); `ReputMessageService` dispatches it to its queue's
//! ConsumeQueue, and consumers pull by ConsumeQueue offset. Only what lies below the dispatch
//! bound is dispatched (`CommitLog.getConfirmOffset`): the CommitLog's end — flushed or not —
//! in 4.9, and in 5.3 unless `flushDiskType=SYNC_FLUSH`, where it is the flushed position.
//!
//! `flushDiskType=ASYNC_FLUSH` (`FlushRealTimeService`) flushes every `flushIntervalCommitLog`
//! (500 ms) when at least `flushCommitLogLeastPages` (4) pages are dirty, and every
//! `flushCommitLogThoroughInterval` (10 s) whatever is dirty: under light load up to 10 s of
//! acknowledged messages sit in the page cache, and a power loss takes them. `SYNC_FLUSH`
//! (`GroupCommitService`) answers a put only once it is flushed, `FLUSH_DISK_TIMEOUT` after
//! `syncFlushTimeout` (5 s). A restarted broker recovers its CommitLog as the disk has it and
//! rebuilds the ConsumeQueues to it (`recoverAbnormally` truncates them to the CommitLog).
//!
//! `transientStorePoolEnable` (`TransientStorePool`, `CommitLog.CommitRealTimeService`): the
//! master appends puts to an off-heap `writeBuffer`, and the commit service copies it to the
//! page cache every `commitIntervalCommitLog` (200 ms; `commitCommitLogThoroughInterval`, also
//! 200 ms, makes every run commit whatever is pending), or at once when a put finds
//! `commitCommitLogLeastPages` (4) pages waiting (`wakeCommitWhenPutMessage`). Until then the
//! message is not in the CommitLog as readers see it (`DefaultMappedFile.getReadPosition` is the
//! committed position): not dispatched, not replicated, not flushed — and lost to a process
//! crash, not only to a power loss, although the put was answered. RocketMQ refuses no
//! combination: 4.9 ignores the key unless ASYNC_FLUSH on a non-SLAVE
//! (`MessageStoreConfig.isTransientStorePoolEnable`); 5.3 uses it on every store but a classic
//! SLAVE's (`DefaultMessageStore.isTransientStorePoolEnable`), and with SYNC_FLUSH the group
//! commit waits until the buffer is committed and flushed (`GroupCommitService.doCommit`). In
//! controller mode a slave's HA client writes to the page cache directly
//! (`appendToCommitLog`), and a broker commits its buffer before it changes role
//! (`AutoSwitchHAService.waitingForAllCommit`). DLedger's CommitLog does not use it.
//!
//! ## Master and slaves
//!
//! Each broker group (`brokerName`) has a master (brokerId 0, `brokerRole` ASYNC_MASTER or
//! SYNC_MASTER) and `slavesPerGroup` slaves. A slave pulls: it reports its CommitLog's end
//! (`HAClient.reportSlaveMaxOffset`, at least every 5 s) and the master streams what follows
//! (`HAConnection.WriteSocketService`); there is no truncation — the master goes on from
//! whatever offset the slave reports — and no automatic failover: while a master is down,
//! consumers read (and commit offsets) on a slave, and producers cannot write to that group.
//! `SYNC_MASTER` makes a put wait for a slave, differently per version:
//!
//! - 4.9 (`CommitLog.submitReplicaRequest`): with no slave connected (`HAService.isSlaveOK`)
//!   the status is `SLAVE_NOT_AVAILABLE` at once; otherwise the put waits for a slave to
//!   acknowledge it, `FLUSH_SLAVE_TIMEOUT` after `slaveTimeout` (3 s).
//! - 5.x (RIP-34, `CommitLog.handleHA`, `GroupTransferService`): it waits for
//!   `inSyncReplicas` acknowledgements, the master's own included — and `inSyncReplicas`
//!   defaults to 1, so by default SYNC_MASTER does not wait at all.
//!
//! Every status but an error means the master stored the message (`SendMessageProcessor`):
//! the client gets a `SendResult` with `SEND_OK`, `FLUSH_DISK_TIMEOUT`, `FLUSH_SLAVE_TIMEOUT`
//! or `SLAVE_NOT_AVAILABLE`, and what counts as sent is the application's choice
//! (`producer.accept`: `send-ok`, the best practice, or `any`, as OpenChaos' driver does).
//!
//! ## DLedger (`enableDLegerCommitLog=true`)
//!
//! Each broker group's 1 + `slavesPerGroup` brokers form one DLedger group (`dLegerGroup` the
//! `brokerName`, `dLegerPeers` n0, n1, … by brokerId, `dLegerSelfId` its own), and the CommitLog
//! is DLedger's entry log (`DLedgerCommitLog`): there is no classic HA, and `brokerRole`,
//! `flushDiskType` and `inSyncReplicas` play no part.
//!
//! *Election* (`DLedgerLeaderElector`, `MemberState`). A node starts as a candidate with the
//! `currTerm` and `voteFor` of its `currterm` file and votes at once, in that term (its first
//! `ParseResult` is WAIT_TO_REVOTE); later rounds come `minVoteIntervalMs`..`maxVoteIntervalMs`
//! (300..1000 ms) apart, and a round that must try a new term takes `nextTerm` (the largest term
//! heard of, or one more). A voter (`handleVote`) first refuses a candidate whose ledger is
//! behind its own (`ledgerEndTerm`, then `ledgerEndIndex`), then a smaller term; a larger term
//! makes it a candidate of that term (TERM_NOT_READY, and it takes the term at once); in its
//! own term it votes once, persisting the vote. A round (`voteLatch`, up to 2–3 s) passes with a
//! majority of ACCEPTs; a majority of ledgers bigger than the candidate's, a larger term, or a
//! leader already known make it wait. The leader heartbeats every `heartBeatTimeIntervalMs`
//! (2 s); a follower without one for `maxHeartBeatLeak` (3) intervals becomes a candidate, and
//! so does a leader whose heartbeats found no majority three rounds running, or that heard of a
//! larger term.
//!
//! *Replication* (`DLedgerEntryPusher`). The leader appends a put to its ledger in its term
//! (`appendAsLeader`) and an `EntryDispatcher` per follower pushes it: after every election it
//! first COMPAREs from its ledger's end back (an entry matches when its index and term do,
//! stepping to the follower's end when it is shorter), then TRUNCATEs the follower after the
//! match (`truncate`: the follower drops what the new leader does not have, acknowledged or not)
//! and APPENDs from there; an APPEND answered INCONSISTENT_STATE starts the comparison again. A
//! follower (`EntryHandler`) takes an APPEND that continues its ledger, in the leader's term, and
//! answers once it wrote it to the page cache. The `QuorumAckChecker` commits the median of the
//! followers' watermarks and the leader's end (0.3.1.2 does not ask that the entry be of the
//! current term) and answers the puts up to it: SEND_OK. A put without a quorum after
//! `maxWaitAckTimeMs` (2500 ms) fails with `WAIT_QUORUM_ACK_TIMEOUT`, which
//! `DLedgerCommitLog.asyncPutMessage` turns into IN_SYNC_REPLICAS_NOT_ENOUGH and
//! `SendMessageProcessor` into SYSTEM_ERROR ("in-sync replicas not enough"; 4.9.7 takes
//! OS_PAGECACHE_BUSY, SYSTEM_ERROR "broker busy"): a retryable code, so
//! the producer tries another broker group within its budget, while the entry may still commit
//! (a duplicate). A leader that steps down leaves its waiting puts unanswered (the checker runs
//! on leaders only): the producer's budget runs out, in doubt. Followers learn the committed
//! index with each APPEND and a COMMIT push every second, and every broker dispatches only what
//! is committed (`DLedgerCommitLog.getConfirmOffset` is `getMaxOffset`, the committed position):
//! consumers reading a follower see what the leader committed.
//!
//! *The broker's role* (`DLedgerRoleChangeHandler`). A candidate or follower is a SLAVE
//! registered as brokerId selfId + 1; a leader becomes SYNC_MASTER, brokerId 0, once its
//! ledger's end is committed and dispatched, and registers. The NameServer keeps one address per
//! brokerId, so the new master replaces the old in the route; producers learn it with their next
//! route poll, and until then a send to the old one is refused (SERVICE_NOT_AVAILABLE: a slave's
//! store takes no puts) and retried on another group. The schedule and transaction services run
//! on the master only. Consumer offsets are not replicated: each broker keeps those committed to
//! it, so a new master hands queues on from older offsets (duplicates).
//!
//! *Durability.* DLedger acknowledges before any fsync: `FlushDataService` flushes the entry
//! files every `flushFileInterval` (10 ms). An entry acknowledged by a majority survives any
//! crash (the page cache keeps it); a power loss within those milliseconds of the majority that
//! acknowledged it — or of the one follower that did, while the third node never got it —
//! leaves a majority without it, and if that majority elects one of its own (its ledgers are as
//! long as each other's, and a majority suffices) the new leader truncates the last copy too: a
//! SEND_OK message lost. The recovery keeps the committed index of the last checkpoint (`checkPointInterval`,
//! 3 s), capped to the recovered end.
//!
//! ## Controller mode (`enableControllerMode=true`, 5.x)
//!
//! A controller (`ControllerManager`; deployments run three, replicating its state machine
//! with DLedger — the model runs one, as reliable infrastructure like the NameServer) keeps
//! each group's `SyncStateInfo` (`ReplicasInfoManager`): the master's brokerControllerId, the
//! master epoch, the SyncStateSet and its epoch. Brokers register (`ReplicasManager.register`:
//! brokerControllerIds from 1), heartbeat every `brokerHeartbeatInterval` (1 s) with their last
//! epoch and CommitLog end, and ask for an election when no master is known (`brokerElect`):
//! the first broker to ask is the group's first master. A broker whose heartbeats stop for
//! `controllerHeartBeatTimeoutMills` (10 s), or whose connection closes, is inactive
//! (`DefaultBrokerHeartbeatManager`); if it was the master, the controller elects
//! (`electMaster`, `DefaultElectPolicy`): among the live members of the SyncStateSet the one
//! with the greatest (epoch, offset) — with `enableElectUncleanMaster=true` (a controller key,
//! false by default) among every live replica when no member is alive — gives it the next
//! epoch and a SyncStateSet of itself alone, and notifies the group's live brokers
//! (`NOTIFY_BROKER_ROLE_CHANGED`); with no candidate the master is cleared and the epoch still
//! moves on. Brokers also poll the controller every `syncBrokerMetadataPeriod` (5 s).
//!
//! A broker told it is master (`ReplicasManager.changeToMaster`) drops its HA client and
//! connections, appends (epoch, CommitLog end) to its EpochFile (`EpochFileCache.appendEntry`,
//! refused unless both grow), and becomes SYNC_MASTER, brokerId 0, with the special services;
//! `brokerRole` plays no part. A slave (`changeToSlave`) registers with its
//! brokerControllerId and connects its `AutoSwitchHAClient`: the master's handshake carries its
//! epoch entries and end, and the slave truncates its CommitLog, ConsumeQueues and EpochFile to
//! the consistent point (`findConsistentPoint`: the newest epoch both have at the same start
//! offset, up to the lesser of its two ends) — whatever it had beyond, acknowledged or not,
//! goes — and reports its offset with its next heartbeat (`haSendHeartbeatInterval`, 5 s). The
//! master streams from there, one epoch per transfer, each carrying its confirm offset; the
//! slave records each new epoch and dispatches up to that confirm offset.
//!
//! The master keeps the SyncStateSet (`AutoSwitchHAService`): a slave whose report reaches the
//! master's end at its last transfer caught up; one that has the confirm offset and reached
//! the current epoch joins (`maybeExpandInSyncStateSet`), one not caught up for
//! `haMaxTimeSlaveNotCatchup` (15 s) leaves at the next check (`maybeShrinkSyncStateSet`, every
//! `checkSyncStateSetPeriod`, 5 s), one whose connection closes or is silent 20 s leaves at
//! once (`removeConnection`). Each change goes to the controller (`alterSyncStateSet`, fenced by
//! the master epoch and the set's epoch, to live replicas that include the master), and until
//! it answers the set in use is the union of the old and the new. A put (SYNC_MASTER,
//! `CommitLog.asyncPutMessage`) is refused IN_SYNC_REPLICAS_NOT_ENOUGH when the set is smaller
//! than `minInSyncReplicas` (1); with `allAckInSyncStateSet=true` it waits for every member of
//! the set (`GroupTransferService.doWaitTransfer`), and the master dispatches only what they
//! all have (`getConfirmOffset`: `computeConfirmOffset`, the least acknowledged offset of the
//! set, while the local set has other members); with the default `false` it waits for
//! `inSyncReplicas` acknowledgements of any slave (1: none) and dispatches its whole CommitLog.
//! A put that waited `slaveTimeout` answers FLUSH_SLAVE_TIMEOUT.
//!
//! So with `allAckInSyncStateSet` an acknowledged message is on every member of the set, and
//! the controller elects only members: it survives the master's loss. Without it the master
//! acknowledges alone and hands consumers what its slave may lack; the failover elects the
//! slave and the old master, back as a slave, truncates — and a consumer that had read past
//! the new master's positions skips what the new master put there. An unclean election loses
//! what the set's members had and the new master lacks.
//!
//! ## The producer
//!
//! A sync send (`DefaultMQProducerImpl.sendDefaultImpl`) picks a queue round robin over its
//! route, and on failure retries up to `retryTimesWhenSendFailed` (2) times, each on a queue of
//! another broker group (`selectOneMessageQueue(lastBrokerName)`), all within one
//! `sendMsgTimeout` budget (3 s). A closed connection fails the request at once
//! (`NettyRemotingAbstract.failFast`) and the send is retried although the broker may have
//! stored the message: a duplicate, in another queue. A timeout that uses up the budget is not
//! retried, and the message is in doubt. A status other than SEND_OK is retried only with
//! `retryAnotherBrokerWhenNotStoreOK`. A send through a `MessageQueueSelector`
//! (`producer.selector=hash`, `sendSelectImpl`) goes to `hash(key) % queues` of the current
//! route, once.
//!
//! ## The push consumer
//!
//! CLUSTERING: each consumer heartbeats every broker (30 s); a broker's `ConsumerManager`
//! notifies the group when its list changes, drops a consumer whose connection closed or who
//! was silent 120 s. Every 20 s and on notification a consumer rebalances
//! (`RebalanceImpl.rebalanceByTopic`): it asks one broker for the group's consumers and runs
//! `AllocateMessageQueueAveragely` over its own route — so two consumers may disagree for a
//! while, and both take a queue or neither. A new queue starts from the offset the broker has
//! (`QueryConsumerOffsetProcessor`; 0 for a young queue); messages are pulled (32 at a time,
//! long-polled by the broker, `PullRequestHoldService`) into the queue's ProcessQueue.
//!
//! - `consumer.listener=concurrently` (`ConsumeMessageConcurrentlyService`): `consumeThreadMax`
//!   threads take messages as they arrive, so within a queue handlers finish out of order. The
//!   offset after a handler is the lowest one still in the ProcessQueue
//!   (`ProcessQueue.removeMessage`), increase-only, and it reaches the broker one-way every
//!   `persistConsumerOffsetInterval` (5 s, `RemoteBrokerOffsetStore.persistAll`) and on pulls.
//!   A crash or a rebalance hands the queue on from there: everything above is consumed again.
//! - `consumer.listener=orderly` (`ConsumeMessageOrderlyService`): a consumer takes a queue only
//!   once its master locked it for it (`RebalanceLockManager`, in memory, expiring after 60 s),
//!   relocks every 20 s, consumes only while its lease (30 s) holds, one message of a queue at a
//!   time in offset order, and unlocks a queue it gives up once no handler holds it.
//!
//! A handler that returns RECONSUME_LATER (`consumer.reconsume`) makes a concurrent consumer send
//! the message back to its master (`SendMessageProcessor.consumerSendMsgBack`), which writes it
//! without waiting for the flush or the slaves to `SCHEDULE_TOPIC_XXXX` at delay level
//! 3 + reconsumeTimes of `messageDelayLevel` (1s 5s 10s 30s 1m … 2h, divisible by
//! `messageDelayLevel.divisor`), from where `ScheduleMessageService` moves it to the group's
//! `%RETRY%` topic, one queue per broker group, which every consumer of the group also
//! subscribes to; past `maxReconsumeTimes` (16) it goes to `%DLQ%`, which nobody reads. The
//! message leaves the ProcessQueue once the broker answered; a failed send-back is consumed
//! again locally after 5 s. An orderly consumer instead suspends the queue for a second
//! (`suspendCurrentQueueTimeMillis`) and retries the same message, unboundedly.
//!
//! The broker keeps consumer offsets in memory and writes them to `consumerOffset.json` every
//! `flushConsumerOffsetInterval` (5 s): a broker crash forgets the last ones.
//!
//! BROADCASTING (`messageModel`): every consumer of the group gets every message, so each is
//! its own audience for the checkers. Its rebalance takes every queue of its route
//! (`RebalanceImpl.rebalanceByTopic` asks no broker for the consumer list, and passes
//! `isOrder=false`, so an orderly listener takes no locks), it subscribes to no `%RETRY%` topic
//! (`DefaultMQPushConsumerImpl.copySubscription`), and its offsets live in the client's own
//! `offsets.json` (`LocalFileOffsetStore`: read at start, written every
//! `persistConsumerOffsetInterval` by `MixAll.string2File`, never sent to a broker). A queue the
//! file has no offset for starts where `consumeFromWhere` says
//! (`RebalancePushImpl.computePullFromWhereWithException`): with the default
//! CONSUME_FROM_LAST_OFFSET at the broker's max offset (`GET_MAX_OFFSET`), so what was sent before
//! a consumer's first start, or while one that never wrote its file was down, it never gets;
//! CONSUME_FROM_FIRST_OFFSET starts at 0. A restarted consumer reads again from its file's
//! offsets: up to 5 s of messages a second time. A message its handler fails is dropped
//! (`ConsumeMessageConcurrentlyService.processConsumeResult`: "BROADCASTING, the message consume
//! failed, drop it"), noted as such.
//!
//! ## Transactional messages
//!
//! With `transaction=commit` or `rollback-some` every producer is a `TransactionMQProducer`
//! (`DefaultMQProducerImpl.sendMessageInTransaction`). The message goes out by the ordinary
//! sync send, retries included, flagged prepared; the master stores it as a half message in
//! `RMQ_SYS_TRANS_HALF_TOPIC` (`SendMessageProcessor` →
//! `TransactionalMessageBridge.parseHalfMessageInner`), its queue kept as `REAL_QID`, with the
//! flush and replication of any put, and no consumer reads that topic. On SEND_OK the
//! application runs its local transaction (`executeLocalTransaction`): it commits, or under
//! `rollback-some` every fifth rolls back; any other SendStatus rolls it back; a send that
//! throws ends there, with no local transaction and no end request. Then `endTransaction` sends `END_TRANSACTION` one-way to the master that
//! stored the half message: its fate is never known to the producer.
//!
//! `EndTransactionProcessor` finds the half message by CommitLog offset and checks it is the one
//! named (`checkPrepareMessage`); COMMIT writes the message to its real queue
//! (`endMessageTransaction`, `waitStoreMsgOK=false`) and ROLLBACK writes nothing, and both mark
//! the half message done with an op message in `RMQ_SYS_TRANS_OP_HALF_TOPIC`
//! (`deletePrepareMessage`): at once in 4.9 (`putOpMessage`), and in 5.x queued in memory for
//! `TransactionalOpBatchService`, which writes them every `transactionOpBatchInterval` (3 s).
//! UNKNOW changes nothing. Whether the half message was already committed is not asked.
//!
//! Every `transactionCheckInterval` (30 s in 5.x, 60 s in 4.9) the master's
//! `TransactionalMessageCheckService` runs `TransactionalMessageServiceImpl.check` over the half
//! queue from its check offset: a half message with an op message is passed over; one checked
//! `transactionCheckMax` (15) times already is discarded — written to
//! `TRANS_CHECK_MAX_TIME_TOPIC`, which nobody reads (`needDiscard`,
//! `DefaultTransactionalMessageCheckListener.resolveDiscardMsg`); the round stops at the first
//! one younger than `transactionTimeOut` (6 s); every other is put back to the half queue as a
//! copy with one check more (`putBackHalfMsgQueue`) and checked back
//! (`AbstractTransactionalMessageCheckListener.sendCheckMessage`): `CHECK_TRANSACTION_STATE` to
//! a channel of its producer group from the broker's `ProducerManager`, which only producer
//! heartbeats fill (every `heartbeatBrokerInterval`, 30 s) — without one the check is lost
//! ("channel is null") and still counts. The producer answers
//! (`DefaultMQProducerImpl.checkTransactionState` → `checkLocalTransaction`) with another
//! one-way `END_TRANSACTION`, naming the copy. So a commit whose end request was lost (the master
//! crashed with it in flight) is delivered once a check reaches the producer; and a half
//! message whose producer cannot be reached for `transactionCheckMax` checks is discarded, and a
//! committed local transaction's message is never delivered. A restarted master knows no
//! producer until its next heartbeat, so a small `transactionCheckMax` with short check
//! intervals loses committed messages to a master crash alone.
//!
//! The history records each transaction as the application learns its outcome: a committed one
//! as `Op::Transaction` committed and `Op::Ack` (the `TransactionSendResult` says SEND_OK and
//! COMMIT_MESSAGE), a rolled-back one as aborted and `Op::Fail`. A RocketMQ transaction has one
//! message, so the atomicity checker's `torn` cannot happen and atomicity reduces to "a
//! rolled-back transaction's message is never delivered" (`aborted-read`); "a committed one's is
//! delivered" is at-least-once's `lost`.
//!
//! ## Replay by time
//!
//! With `--rewind N` (orderly CLUSTERING consumers only: concurrent ones give no order to
//! replay against, BROADCASTING keeps its offsets on the client) the application replays. Each
//! message carries its `storeTimestamp`, which the master's clock gives it as its CommitLog
//! appends it (`DefaultAppendMessageCallback.doAppend`: `msgInner.getStoreTimestamp()`, set
//! from `System.currentTimeMillis()` in `CommitLog.asyncPutMessage`); slaves keep the
//! master's. The machine's clock is a counter that a tick of the node's own timers advances by
//! 100 ms, so the `clock` fault makes it run fast or slow; the NTP daemon polls the NameServer's
//! host (infrastructure, its clock correct) every 64 s and steps the clock when it is more than
//! 128 ms off, back as well as forward — so a master whose clock ran fast stamps later messages
//! with earlier times. A restarted broker's clock reads on from the last timestamp its CommitLog
//! kept until the first answer. None of this exists in a run without `--rewind`.
//!
//! Once caught up with a queue (a pull found nothing new and everything pulled was consumed)
//! after consuming past where it last rewound, the consumer, acting as `mqadmin
//! resetOffsetByTime`, asks the queue's master to reset the group's offset to the
//! `storeTimestamp` of the message it consumed `N` back. The master searches the ConsumeQueue by
//! time (`ConsumeQueue.getOffsetInQueueByTime`), as each version writes it:
//! [`store::ConsumeQueues::offset_by_time`] (5.3 `binarySearchInQueueByTime`: the last and first
//! units checked first, a binary search, then LOWER walks back over equal timestamps) and
//! [`store::ConsumeQueues::offset_by_time_4_9`] (a binary search that returns any exact match,
//! else the nearer of its last probes below and above, so possibly a message stored before the
//! time). Both assume ascending timestamps; after a clock step back they can land past messages
//! stamped after the time, or before ones stamped earlier.
//!
//! - 5.3 (`useServerSideResetOffset=true`, `AdminBrokerProcessor.resetOffset` →
//!   `resetOffsetInner` with the queue id): the offset goes to
//!   `ConsumerOffsetManager.resetOffsetTable`; `queryOffset` returns it, `updateConsumerOffset`
//!   ignores commits while it waits, and the queue's next pull erases it and answers
//!   `OFFSET_RESET` (PULL_OFFSET_MOVED to the client), which drops the ProcessQueue and commits
//!   the new offset; the next rebalance takes the queue again from there.
//! - 4.9 (`Broker2Client.resetOffset`, `isForce=true` as `mqadmin` sends it): every queue of the
//!   topic on that broker is searched and the table goes one-way
//!   (`RESET_CONSUMER_CLIENT_OFFSET`) to each consumer of the group. The client
//!   (`MQClientInstance.resetOffset`, synchronized) suspends (no pulls, no rebalance), drops and
//!   clears those ProcessQueues, sleeps 10 s, writes each offset to its offset store, removes
//!   the queue (`removeUnnecessaryMessageQueue`: persist, unlock) and resumes with a rebalance.
//!   So a 4.9 reset moves every queue of the broker, forward too where the consumer lagged.
//!
//! When the queue's new ProcessQueue learns its start below where the consumer had read, the
//! consumer records `Op::Rewind` in that ProcessQueue's session; the replay checker compares its
//! re-reads with what was read at those positions.
//!
//! # Who is who
//!
//! `ns` is the NameServer; `a0`, `a1`, `b0`, `b1`… the brokers (group letter, brokerId; with
//! DLedger the digit is the node's `dLegerSelfId`, whoever leads; in controller mode the digit
//! is the brokerControllerId less one, whoever is master); `ctl` the controller;
//! `p0`… producers; `c0`… consumers of one consumer group. One topic with
//! `defaultTopicQueueNums` queues on each group; the ordering scope is the queue.
//!
//! # What is simplified
//!
//! CommitLog and ConsumeQueue positions are record indices, a page is a record; the
//! ConsumeQueue is derived from the CommitLog (the recovery's truncation is the rebuild), and
//! a restarted broker counts what it recovered as flushed. Dispatch is immediate. The slave's
//! offsets are only those consumers commit to it (no `SlaveSynchronize`), which only adds
//! duplicates. A slave that has not got as far as a consumer's offset makes it pull again after
//! a second (the real client spins). Clients connect to nodes directly (no address lookups);
//! consumer ids sort as numbers. A restarted master schedules its pending retry messages
//! anew, with their whole delay. A BROADCASTING consumer's `offsets.json` survives a power loss of
//! its machine (it is rewritten every 5 s and the kernel writes it back soon after: losing its
//! last rewrites would only add re-reads). Transactions: each producer is its own producer
//! group, and its log is its application's local transaction table, which answers check-backs
//! (committed or rolled back as recorded; UNKNOW while the send is to come or under way; rolled
//! back once it threw); only transactional producers heartbeat brokers, and the check and op
//! batch services run only in transactional deployments (elsewhere they would find nothing);
//! half messages are named by CommitLog position, op messages carry one half message each; the
//! age test of a check is a timer per half message, and a restarted master gives its unresolved
//! half messages a whole `transactionTimeOut` again (later checks, never fewer). Replay by
//! time: the clock advances in 100 ms ticks of the node's timers, so a paused broker's clock
//! falls behind until the next NTP poll steps it forward (earlier stamps after a pause, as
//! after a step back); NTP's slewing, its network delay and the `stepout` wait are left out;
//! the application resets one queue at a time (5.3's `queueId`), from the consumer's node; a
//! pull held when the reset arrives is answered without it (the next pull sees it). DLedger:
//! a follower answers a push only once it is a follower of the pusher (a restarted node waits
//! for the next heartbeat), and an RPC to a node that is down is not failed at once but waits for
//! its timeout (the vote latch, the push timeouts); the dispatcher pushes one request at a time
//! per follower, in batches of 32 (DLedger pipelines single entries); the `currterm` and
//! checkpoint files survive a power loss whole (written with `string2File`, without fsync: a
//! vote lost with them could let one node vote twice in a term, which the model does not show);
//! a node that is not yet leader answers a put SERVICE_NOT_AVAILABLE (a candidate whose store is
//! still ASYNC_MASTER fails it in `handleAppend`, NOT_LEADER, also retryable); a follower's
//! truncation below what it dispatched rebuilds its ConsumeQueues to the log; leadership
//! transfer and preferred leaders are left out. Controller mode: one controller process
//! (DLedger-replicated in deployments), never crashed; brokerControllerIds are brokerId + 1
//! (the controller hands them out in registration order, and the metadata files keep them);
//! registration is one request (`getNextBrokerId`, `applyBrokerId` and
//! `registerBrokerToController` together); a broker registers with the NameServer only once it
//! has a role; the controller's inactivity is a 10 s timer per broker (the scan every 5 s makes
//! it 10–15 s), the periodic re-election scan (`scanNeedReelectBrokerSets`) is left out (the
//! inactivity of the master already triggers the election), election priorities are all equal;
//! the master streams to each slave in batches of 32 entries and answers each report with the
//! next batch or a heartbeat; the EpochFile survives a power loss whole (written by
//! `MixAll.string2File`, without fsync), less the epochs starting past the recovered end; a
//! broker's `SlaveSynchronize` (offsets, every 10 s) is left out as in classic mode;
//! `asyncLearner`, `syncFromLastFile` and preferred elections are left out. The transient store
//! pool: the commit copies the whole buffer, a page is a record. No tags or filters or batches.
//! See `docs/rocketmq.md`.
//!
//! # Sources
//!
//! apache/rocketmq (tags `rocketmq-all-4.9.7` and `rocketmq-all-5.3.x`; replay by time read at
//! `rocketmq-all-5.3.3` 29d90a4ff96c04c094039685a6106870c58a7e40 and `rocketmq-all-4.9.8`
//! 2bdd53ef6694ffa19fd00db0b887e4895444f63e: `store/.../ConsumeQueue.java`
//! (`getOffsetInQueueByTime`, `binarySearchInQueueByTime`), `CommitLog.java`
//! (`pickupStoreTimestamp`, `DefaultAppendMessageCallback`),
//! `broker/.../processor/AdminBrokerProcessor.java` (`resetOffset`, `resetOffsetInner`),
//! `broker/.../offset/ConsumerOffsetManager.java` (`assignResetOffset`,
//! `queryThenEraseResetOffset`, `queryOffset`), `PullMessageProcessor.java` (OFFSET_RESET),
//! `ConsumerManageProcessor.java`, `common/.../BrokerConfig.java` (`useServerSideResetOffset`),
//! `broker/.../client/net/Broker2Client.java` (`resetOffset`), `client/.../MQClientInstance.java`
//! (`resetOffset`), `tools/.../ResetOffsetByTimeCommand.java` (`force` true by default)):
//! `store/.../CommitLog.java` (`asyncPutMessage`, `handleDiskFlushAndHA`, `handleHA`,
//! 4.9 `submitReplicaRequest`, `getConfirmOffset`, `FlushRealTimeService`,
//! `GroupCommitService`), `store/.../DefaultMessageStore.java` (`ReputMessageService`,
//! `getMessage`), `store/.../ha/DefaultHAService.java`, `GroupTransferService.java`,
//! `HAConnection`, `HAClient`, `store/.../config/MessageStoreConfig.java` (defaults),
//! `broker/.../BrokerStartup.java`, `broker/.../processor/SendMessageProcessor.java`,
//! `PullMessageProcessor.java`, `QueryConsumerOffsetProcessor`, `broker/.../client/ConsumerManager.java`,
//! `broker/.../client/rebalance/RebalanceLockManager.java`,
//! `namesrv/.../routeinfo/RouteInfoManager.java`, `client/.../DefaultMQProducerImpl.java`
//! (`sendDefaultImpl`, `sendSelectImpl`), `client/.../RebalanceImpl.java`,
//! `AllocateMessageQueueAveragely.java`, `ProcessQueue.java`,
//! `ConsumeMessageConcurrentlyService.java`, `ConsumeMessageOrderlyService.java`,
//! `RemoteBrokerOffsetStore.java`, `LocalFileOffsetStore.java`, `RebalancePushImpl.java`,
//! `DefaultMQPushConsumerImpl.java`, `common/.../MixAll.java` (`string2File`); transactions:
//! `client/.../DefaultMQProducerImpl.java` (`sendMessageInTransaction`, `endTransaction`,
//! `checkTransactionState`), `client/.../MQClientInstance.java` (heartbeats),
//! `broker/.../processor/EndTransactionProcessor.java`,
//! `broker/.../transaction/TransactionalMessageCheckService.java`,
//! `AbstractTransactionalMessageCheckListener.java`,
//! `broker/.../transaction/queue/TransactionalMessageServiceImpl.java` (`check`,
//! `needDiscard`, `putBackHalfMsgQueue`, `deletePrepareMessage`),
//! `TransactionalMessageBridge.java`, `TransactionalOpBatchService.java`,
//! `DefaultTransactionalMessageCheckListener.java` (`resolveDiscardMsg`),
//! `broker/.../client/ProducerManager.java` (`getAvailableChannel`),
//! `common/.../BrokerConfig.java` (`transactionTimeOut`, `transactionCheckMax`,
//! `transactionCheckInterval`, `transactionOpBatchInterval`); `docs/en/Feature.md`,
//! `best_practice.md`, `QuorumACK.md`. DLedger: apache/rocketmq at
//! 8fc57f1468d182eea11c01e089c0250d647dc5f3 (5.3.x, `dleger.version` 0.3.1.2):
//! `store/.../dledger/DLedgerCommitLog.java` (`asyncPutMessage`, `getConfirmOffset`,
//! `getMaxOffset`, the DLedgerConfig it builds), `broker/.../dledger/DLedgerRoleChangeHandler.java`,
//! `broker/.../BrokerStartup.java` (`setBrokerId(-1)`, enableControllerMode with
//! enableDLegerCommitLog refused), `BrokerController.java`, `store/.../config/MessageStoreConfig.java`
//! (`enableDLegerCommitLog`, `dLegerGroup`, `dLegerPeers`, `dLegerSelfId`),
//! `SendMessageProcessor.handlePutMessageResult` (IN_SYNC_REPLICAS_NOT_ENOUGH → SYSTEM_ERROR),
//! `client/.../DefaultMQProducer.java` (`retryResponseCodes`),
//! `distribution/conf/dledger/broker-n0.conf`. Controller mode and the transient store pool,
//! read at `rocketmq-all-5.3.3` (29d90a4ff96c04c094039685a6106870c58a7e40):
//! `controller/.../ControllerManager.java` (`onBrokerInactive`, `triggerElectMaster`,
//! `notifyBrokerRoleChanged`), `controller/.../impl/manager/ReplicasInfoManager.java`
//! (`electMaster`, `alterSyncStateSet`, `registerBroker`, `applyEvent`), `SyncStateInfo.java`,
//! `controller/.../elect/impl/DefaultElectPolicy.java` (`elect`, `tryElect`),
//! `controller/.../impl/heartbeat/DefaultBrokerHeartbeatManager.java` (`onBrokerHeartbeat`,
//! `scanNotActiveBroker`, `onBrokerChannelClose`), `common/.../ControllerConfig.java`
//! (`enableElectUncleanMaster`, `electMasterMaxRetryCount`), `common/.../BrokerConfig.java`
//! (`enableControllerMode`, `brokerHeartbeatInterval`, `syncBrokerMetadataPeriod`,
//! `checkSyncStateSetPeriod`, `controllerHeartBeatTimeoutMills`),
//! `broker/.../controller/ReplicasManager.java` (`startBasicService`, `changeBrokerRole`,
//! `changeToMaster`, `changeToSlave`, `brokerElect`, `schedulingSyncBrokerMetadata`,
//! `checkSyncStateSetAndDoReport`), `store/.../ha/autoswitch/AutoSwitchHAService.java`
//! (`changeToMaster`, `changeToSlave`, `maybeShrinkSyncStateSet`, `maybeExpandInSyncStateSet`,
//! `computeConfirmOffset`, `inSyncReplicasNums`, `removeConnection`),
//! `AutoSwitchHAConnection.java` (handshake, `maybeExpandInSyncStateSet`, the transfer within
//! one epoch), `AutoSwitchHAClient.java` (`doTruncate`, the transfer header, `confirmOffset`),
//! `EpochFileCache.java` (`appendEntry`, `findConsistentPoint`, `truncateSuffixByOffset`),
//! `common/.../utils/CheckpointFile.java`, `store/.../ha/GroupTransferService.java`
//! (`doWaitTransfer`, `ALL_ACK_IN_SYNC_STATE_SET`), `store/.../CommitLog.java`
//! (`asyncPutMessage`'s `minInSyncReplicas` check, `getConfirmOffset`,
//! `CommitRealTimeService`, `GroupCommitService.doCommit`, `DefaultFlushManager`),
//! `store/.../DefaultMessageStore.java` (`isTransientStorePoolEnable`),
//! `store/.../logfile/DefaultMappedFile.java` (`getReadPosition`),
//! `store/.../config/MessageStoreConfig.java` (`allAckInSyncStateSet`, `minInSyncReplicas`,
//! `haMaxTimeSlaveNotCatchup`, `transientStorePoolEnable`, `commitIntervalCommitLog`,
//! `commitCommitLogLeastPages`, `commitCommitLogThoroughInterval`,
//! `wakeCommitWhenPutMessage`), `broker/.../BrokerStartup.java` (controller mode ignores
//! `brokerRole`; exit -4 with DLedger); 4.9.7 `MessageStoreConfig.isTransientStorePoolEnable`.
//! openmessaging/dledger tag `dledger-all-0.3.1.2`
//! (41dfb7a73a5f550b43adf98139cd43370908befb): `DLedgerConfig.java` (defaults),
//! `DLedgerLeaderElector.java` (`handleVote`, `handleHeartBeat`, `maintainAsCandidate`,
//! `sendHeartbeats`, `maintainAsFollower`), `MemberState.java` (`nextTerm`, `persistState`),
//! `DLedgerEntryPusher.java` (`QuorumAckChecker`, `EntryDispatcher.doCompare`, `doTruncate`,
//! `EntryHandler.handleDoAppend`, `handleDoCompare`, `handleDoTruncate`,
//! `checkResponseFuturesTimeout`), `store/file/DLedgerMmapFileStore.java` (`updateCommittedIndex`,
//! `FlushDataService`, `persistCheckPoint`, recovery), `utils/IOUtils.java` (`string2File`).

mod autoswitch;
mod broker;
mod config;
mod consumer;
mod controller;
mod dledger;
mod namesrv;
mod producer;
pub mod protocol;
mod spec;
pub mod store;
mod view;

pub use broker::{Broker, BrokerState, Put};
pub use config::{
    Accept, BrokerRole, FlushDiskType, Listener, MessageModel, Reconsume, Selector, Settings,
    Transaction, Version,
};
pub use autoswitch::{HaConnection, Replicas};
pub use consumer::{allocate, Consumer, ConsumerState, ProcessQueue, Running};
pub use controller::{Controller, ControllerState, LiveInfo, SyncStateInfo};
pub use dledger::{DLedgerState, Dispatch, Role as DLedgerRole};
pub use namesrv::{NameServer, NameServerState};
pub use producer::{Producer, ProducerState, Sending};
pub use protocol::{LocalTransactionState, Mq, ReplicaInfo, RocketMsg, Tran};
pub use store::{RocketFiles, StoreDisk};

use crate::timers::{exact, retry};
use crate::{AppLog, Config, ConfigError, Disk, Key, Node, Role, Scenario, System, Workload};
use mqcheck_invariants::OrderingPromise;
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::time::Duration;

pub const NAME: &str = "rocketmq";

impl Settings {
    pub fn namesrv(&self) -> Id {
        Id::from(0)
    }

    /// Brokers per group: the master and its slaves.
    fn per_group(&self) -> u32 {
        1 + self.slaves
    }

    /// The broker of `group` with `broker_id`.
    pub fn broker(&self, group: u32, broker_id: u32) -> Id {
        Id::from((1 + group * self.per_group() + broker_id) as usize)
    }

    /// The group of a broker's id.
    pub fn group_of(&self, id: Id) -> u32 {
        (usize::from(id) as u32).saturating_sub(1) / self.per_group()
    }

    /// The brokerId (the model's, 0 for the configured master) of a broker's id.
    pub fn broker_id_of(&self, id: Id) -> u32 {
        (usize::from(id) as u32).saturating_sub(1) % self.per_group()
    }

    /// Controller mode's controller: after every other node, so that the other ids stay as
    /// they are without it.
    pub fn controller(&self) -> Id {
        Id::from((1 + self.brokers() + self.workload.producers + self.workload.consumers) as usize)
    }

    fn brokers(&self) -> u32 {
        self.groups * self.per_group()
    }

    pub fn producer(&self, index: u32) -> Id {
        Id::from((1 + self.brokers() + index) as usize)
    }

    pub fn consumer(&self, index: u32) -> Id {
        Id::from((1 + self.brokers() + self.workload.producers + index) as usize)
    }

    /// Who must get each message: the group (CLUSTERING), or each consumer of it on its own
    /// (BROADCASTING), as the checkers' groups.
    pub fn audience(&self) -> Vec<u32> {
        match self.model {
            MessageModel::Clustering => vec![0],
            MessageModel::Broadcasting => (0..self.workload.consumers).collect(),
        }
    }

    /// The checkers' group a consumer's deliveries count for.
    pub fn audience_of(&self, consumer: u32) -> u32 {
        match self.model {
            MessageModel::Clustering => 0,
            MessageModel::Broadcasting => consumer,
        }
    }

    /// The ordering scope of a queue: its index over all groups; the retry queues follow.
    pub fn scope(&self, mq: Mq) -> u32 {
        if mq.queue == self.retry_queue() {
            self.groups * self.queues + mq.group
        } else {
            mq.group * self.queues + mq.queue
        }
    }

    /// `%RETRY%<group>`'s one queue on each broker group (`retryQueueNums`).
    pub fn retry_queue(&self) -> protocol::QueueId {
        self.queues
    }

    /// `%DLQ%<group>`'s queue: written, never consumed.
    pub fn dlq_queue(&self) -> protocol::QueueId {
        self.queues + 1
    }

    /// `SCHEDULE_TOPIC_XXXX`: retry messages waiting out their delay level.
    pub fn schedule_queue(&self) -> protocol::QueueId {
        self.queues + 2
    }

    /// `RMQ_SYS_TRANS_HALF_TOPIC`'s one queue: half messages, and the copies each check puts
    /// back.
    pub fn half_queue(&self) -> protocol::QueueId {
        self.queues + 3
    }

    /// `RMQ_SYS_TRANS_OP_HALF_TOPIC`'s one queue: which half messages are done.
    pub fn op_queue(&self) -> protocol::QueueId {
        self.queues + 4
    }

    /// `TRANS_CHECK_MAX_TIME_TOPIC`: half messages checked `transactionCheckMax` times,
    /// written, never consumed.
    pub fn check_max_queue(&self) -> protocol::QueueId {
        self.queues + 5
    }

    /// The delay of `messageDelayLevel` level `level` (1-based), divided as configured.
    pub fn delay(&self, level: u32) -> Duration {
        const LEVELS: [u64; 18] = [
            1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200,
        ];
        let secs = LEVELS[(level.clamp(1, 18) - 1) as usize];
        Duration::from_millis(secs * 1000 / u64::from(self.delay_divisor))
    }
}

/// Every node of a RocketMQ deployment, as one actor type.
#[derive(Clone, Debug)]
pub enum RocketActor {
    NameServer(NameServer),
    Controller(Controller),
    Broker(Broker),
    Producer(Producer),
    Consumer(Consumer),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RocketState {
    NameServer(NameServerState),
    Controller(ControllerState),
    Broker(Box<BrokerState>),
    Producer(ProducerState),
    Consumer(Box<ConsumerState>),
}

/// What a node keeps across a restart: a broker's store, a client application's record.
pub type RocketDisk = Disk<RocketFiles>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RocketTimer {
    // NameServer.
    BrokerExpired(Id),
    // Broker.
    Register,
    Flush,
    FlushThorough,
    GroupCommit,
    /// A SYNC_FLUSH put (by the CommitLog end it needs) waited `syncFlushTimeout`.
    FlushTimeout(u64),
    /// A SYNC_MASTER put waited `slaveTimeout`.
    SlaveTimeout(u64),
    HaHeartbeat,
    HaHousekeeping(Id),
    /// A long-polled pull (consumer, request) ends.
    Hold(Id, u64),
    ConsumerExpired(Id),
    LockExpired(protocol::QueueId),
    OffsetFlush,
    /// `ScheduleMessageService`: the scheduled message at this CommitLog position is due.
    Scheduled(u64),
    /// `TransactionalMessageCheckService`: a check round.
    TransactionCheck,
    /// The half message at this CommitLog position is `transactionTimeOut` old: checkable.
    TransactionTimeOut(u64),
    /// 5.x `TransactionalOpBatchService`: the op messages waiting in memory are written.
    OpBatch,
    /// A producer channel without a heartbeat for `channelExpiredTimeout`.
    ProducerExpired(Id),
    /// The machine clock's tick (only when consumers rewind by time).
    Tick,
    /// The NTP daemon polls the time server.
    NtpPoll,
    /// 4.9 `MQClientInstance.resetOffset`: the 10 s the suspended consumer sleeps before it
    /// writes the reset offsets.
    ResetSleep,
    // DLedger.
    /// `StateMaintainer` as a candidate: `nextTimeToRequestVote` came.
    DlMaintain,
    /// A vote's `voteLatch` timed out.
    DlVoteWait,
    /// The leader's next heartbeat round.
    DlHeartbeat,
    /// A follower heard no heartbeat for `maxHeartBeatLeak` intervals.
    DlLeaderLost,
    /// `FlushDataService`'s next flush.
    DlFlush,
    /// `persistCheckPoint`.
    DlCheckpoint,
    /// A push to this follower got no answer in time.
    DlPushTimeout(Id),
    /// The leader's COMMIT pushes.
    DlCommit,
    /// A put (by the CommitLog end it needs) waited `maxWaitAckTimeMs`.
    DlAckTimeout(u64),
    // Clients.
    RouteRefresh,
    Send,
    SendTimeout,
    Start,
    Heartbeat,
    Rebalance,
    PersistOffset,
    LockAll,
    LeaseExpired(Mq),
    PullLater(Mq),
    PullTimeout(Mq),
    /// A consume thread's handler finished.
    Consume(u32),
    /// A message whose send-back failed (by its request) is consumed again locally.
    ConsumeLater(u64),
    /// Orderly: a queue suspended after a failure resumes.
    Suspended(Mq),
    // Added after the others, so that the order of the timers above stays as it was.
    // Controller.
    /// A broker's heartbeats stopped for `controllerHeartBeatTimeoutMills`.
    CtlBrokerExpired(Id),
    /// `transientStorePoolEnable`: `CommitRealTimeService`'s next commit.
    Commit,
    // Controller mode (`ReplicasManager`, `AutoSwitchHAService`).
    /// `startBasicService` failed: tried again after `RETRY_INTERVAL_SECOND`.
    CtlRetryStart,
    /// `sendHeartbeatToController`, every `brokerHeartbeatInterval`.
    CtlHeartbeat,
    /// `schedulingSyncBrokerMetadata`: `getReplicaInfo` every `syncBrokerMetadataPeriod`.
    CtlSyncMetadata,
    /// `schedulingCheckSyncStateSet`: the master's `checkSyncStateSetAndDoReport`.
    CtlCheckSyncStateSet,
    /// A slave (by brokerControllerId) has not caught up for `haMaxTimeSlaveNotCatchup`.
    NotCatchUp(u32),
    /// The slave's HA client reconnects (`closeMasterAndWait`, 5 s).
    AsReconnect,
    /// The slave's HA client read nothing from its master for `haHousekeepingInterval`.
    AsHousekeeping,
}

/// What the applications draw per run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RocketRandom {
    Pace(u64),
    Handling(u64),
}

pub type RocketOut = Out<RocketActor>;

impl Actor for RocketActor {
    type Msg = RocketMsg;
    type Timer = RocketTimer;
    type State = RocketState;
    type Storage = RocketDisk;
    type Random = RocketRandom;

    fn on_start(&self, _id: Id, storage: &Option<RocketDisk>, o: &mut RocketOut) -> RocketState {
        match self {
            RocketActor::NameServer(n) => RocketState::NameServer(n.start(o)),
            RocketActor::Controller(c) => RocketState::Controller(c.start(o)),
            RocketActor::Broker(b) => RocketState::Broker(Box::new(b.start(broker::store(storage), o))),
            RocketActor::Producer(p) => {
                RocketState::Producer(p.start(Disk::restored_app_log(storage), o))
            }
            RocketActor::Consumer(c) => {
                let stored = match storage.as_ref().and_then(Disk::client_files) {
                    Some(RocketFiles::LocalOffsets(offsets)) => offsets.clone(),
                    _ => Default::default(),
                };
                RocketState::Consumer(Box::new(c.start(Disk::restored_app_log(storage), stored, o)))
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<RocketState>, src: Id, msg: RocketMsg, o: &mut RocketOut) {
        match (self, state.to_mut()) {
            (RocketActor::NameServer(n), RocketState::NameServer(s)) => n.on_msg(s, src, msg, o),
            (RocketActor::Controller(c), RocketState::Controller(s)) => c.on_msg(s, src, msg, o),
            (RocketActor::Broker(b), RocketState::Broker(s)) => b.on_msg(s, src, msg, o),
            (RocketActor::Producer(p), RocketState::Producer(s)) => p.on_msg(s, src, msg, o),
            (RocketActor::Consumer(c), RocketState::Consumer(s)) => c.on_msg(s, src, msg, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<RocketState>, timer: &RocketTimer, o: &mut RocketOut) {
        match (self, state.to_mut()) {
            (RocketActor::NameServer(n), RocketState::NameServer(s)) => n.on_timeout(s, timer, o),
            (RocketActor::Controller(c), RocketState::Controller(s)) => c.on_timeout(s, timer, o),
            (RocketActor::Broker(b), RocketState::Broker(s)) => b.on_timeout(s, timer, o),
            (RocketActor::Producer(p), RocketState::Producer(s)) => p.on_timeout(s, timer, o),
            (RocketActor::Consumer(c), RocketState::Consumer(s)) => c.on_timeout(s, timer, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_random(&self, _id: Id, state: &mut Cow<RocketState>, random: &RocketRandom, o: &mut RocketOut) {
        match (self, state.to_mut(), random) {
            (RocketActor::Producer(p), RocketState::Producer(s), RocketRandom::Pace(ms)) => {
                p.on_pace(s, *ms, o)
            }
            (RocketActor::Consumer(c), RocketState::Consumer(s), RocketRandom::Handling(ms)) => {
                c.on_handling(s, *ms, o)
            }
            _ => {}
        }
    }
}

/// A RocketMQ deployment: the NameServer, the broker groups, the producers and one consumer
/// group.
#[derive(Clone, Debug)]
pub struct RocketMq {
    pub settings: Settings,
}

impl System for RocketMq {
    type Actor = RocketActor;
    type Storage = RocketDisk;
    const NAME: &'static str = NAME;

    fn summary() -> &'static str {
        "RocketMQ 4.9/5.3: NameServer routes, CommitLog and ConsumeQueues, ASYNC/SYNC_FLUSH, the transient store pool, master-slave HA, DLedger, controller mode, send retries, concurrent and orderly push consumers, transactional messages"
    }

    fn scenarios() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "defaults",
                sets: &[],
                claim: "RocketMQ out of the box: ASYNC_FLUSH, ASYNC_MASTER, retries, a concurrent push consumer",
            },
            Scenario {
                name: "SYNC_MASTER, SYNC_FLUSH",
                sets: &["brokerRole=SYNC_MASTER", "flushDiskType=SYNC_FLUSH"],
                claim: "the article: RocketMQ is at-least-once (synchronous flush and replication)",
            },
            Scenario {
                name: "5.x SYNC_MASTER, inSyncReplicas=2, SYNC_FLUSH",
                sets: &["brokerRole=SYNC_MASTER", "inSyncReplicas=2", "flushDiskType=SYNC_FLUSH"],
                claim: "the article: RocketMQ is at-least-once (SYNC_MASTER waiting for its slave, RIP-34)",
            },
            Scenario {
                name: "DLedger, three nodes per group",
                sets: &["enableDLegerCommitLog=true", "slavesPerGroup=2"],
                claim: "the article: RocketMQ is at-least-once (DLedger: Raft over three nodes, a quorum's acknowledgement, automatic failover)",
            },
            Scenario {
                name: "controller mode, allAckInSyncStateSet, SYNC_FLUSH",
                sets: &["enableControllerMode=true", "allAckInSyncStateSet=true", "flushDiskType=SYNC_FLUSH"],
                claim: "the article: RocketMQ is at-least-once (5.x controller mode: automatic failover to a member of the SyncStateSet, every member acknowledging)",
            },
            Scenario {
                name: "send retries",
                sets: &["retryTimesWhenSendFailed=2"],
                claim: "the article: RocketMQ retries failed sends",
            },
            Scenario {
                name: "consumer retry, every tenth message fails once",
                sets: &["consumer.reconsume=every-tenth", "messageDelayLevel.divisor=10"],
                claim: "the article: RocketMQ retries failed consumption (%RETRY% topics)",
            },
            Scenario {
                name: "consumer retry, a poison message",
                sets: &["consumer.reconsume=poison-tenth", "messageDelayLevel.divisor=1000"],
                claim: "a message failing maxReconsumeTimes times goes to %DLQ%",
            },
            Scenario {
                name: "orderly, selector",
                sets: &["producer.selector=hash", "consumer.listener=orderly"],
                claim: "the article: RocketMQ is ordered (per sharding key: a MessageQueueSelector and an orderly listener)",
            },
            Scenario {
                name: "transactional messages",
                sets: &["transaction=rollback-some"],
                claim: "the article: RocketMQ has transactions (half messages, a local transaction that commits or rolls back, the broker's check-back)",
            },
        ]
    }

    fn keys() -> Vec<Key> {
        config::keys()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config::validate(config)
    }

    fn rewind() -> Option<&'static str> {
        Some("resetOffsetByTime: the group's offset reset to the first message stored at or after a time")
    }

    fn replay_row(config: &Config) -> Result<(), String> {
        if config.str("consumer.listener") == "orderly" && config.str("messageModel") == "CLUSTERING" {
            Ok(())
        } else {
            Err("RocketMQ consumers rewind only with consumer.listener=orderly and messageModel=CLUSTERING (allowed: consumer.listener=orderly; concurrent consumers give no order to replay against, BROADCASTING keeps its offsets on the client)".to_string())
        }
    }

    fn build(config: &Config, workload: Workload) -> Self {
        RocketMq {
            settings: Settings::from_config(config, workload),
        }
    }

    fn workload(&self) -> Workload {
        self.settings.workload
    }

    fn nodes(&self) -> Vec<Node<RocketActor>> {
        let s = &self.settings;
        let mut nodes = vec![Node {
            name: "ns".into(),
            role: Role::Infrastructure,
            actor: RocketActor::NameServer(NameServer {
                settings: s.clone(),
            }),
        }];
        for group in 0..s.groups {
            for broker_id in 0..s.per_group() {
                nodes.push(Node {
                    name: format!("{}{broker_id}", char::from(b'a' + group as u8)),
                    role: Role::Server,
                    actor: RocketActor::Broker(Broker {
                        settings: s.clone(),
                        group,
                        broker_id,
                    }),
                });
            }
        }
        for index in 0..s.workload.producers {
            nodes.push(Node {
                name: format!("p{index}"),
                role: Role::Producer,
                actor: RocketActor::Producer(Producer {
                    settings: s.clone(),
                    index,
                }),
            });
        }
        for index in 0..s.workload.consumers {
            nodes.push(Node {
                name: format!("c{index}"),
                role: Role::Consumer,
                actor: RocketActor::Consumer(Consumer {
                    settings: s.clone(),
                    index,
                }),
            });
        }
        if s.controller {
            nodes.push(Node {
                name: "ctl".into(),
                role: Role::Infrastructure,
                actor: RocketActor::Controller(Controller {
                    settings: s.clone(),
                }),
            });
        }
        nodes
    }

    fn app_log(storage: &RocketDisk) -> Option<&AppLog> {
        storage.app_log()
    }

    fn is_leader(state: &RocketState) -> bool {
        // A master is what the nemesis likes to isolate: producers can write nowhere else.
        matches!(state, RocketState::Broker(b) if b.master)
    }

    fn reset(_peer: Id) -> Option<RocketMsg> {
        Some(RocketMsg::Disconnected)
    }

    fn describe(msg: &RocketMsg) -> Option<String> {
        view::describe(msg)
    }

    fn label(msg: &RocketMsg) -> String {
        view::label(msg)
    }

    fn notable(msg: &RocketMsg) -> bool {
        view::notable(msg)
    }

    fn show(state: &RocketState, names: crate::Names<'_>) -> String {
        view::show(state, names)
    }

    fn invariants() -> Vec<crate::StateInvariant<RocketMq>> {
        spec::invariants()
    }

    /// Per queue, among acknowledged sends: a retried send lands in another queue, and what
    /// failed may be anywhere.
    fn ordering() -> OrderingPromise {
        OrderingPromise {
            acknowledged_only: true,
            ..OrderingPromise::default()
        }
    }

    fn fault_window(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn drain(&self) -> Duration {
        // Routes heal within two NameServer rounds, a rebalance follows, held pulls and lock
        // leases expire, and the consumers read the rest.
        Duration::from_secs(240)
    }

    fn workload_time(&self) -> Duration {
        let w = &self.settings.workload;
        // A sync send may take its whole budget before the next.
        w.duration(&producer::PACES, &consumer::HANDLING)
            + self.settings.send_timeout * (w.messages / 10)
    }

    fn sends(&self) -> usize {
        let w = &self.settings.workload;
        w.messages as usize * w.producers as usize
    }
}
