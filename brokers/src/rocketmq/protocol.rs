//! What RocketMQ's nodes say to each other: the remoting commands of the model, by
//! `RequestCode` in spirit (`REGISTER_BROKER`, `GET_ROUTEINFO_BY_TOPIC`, `SEND_MESSAGE`,
//! `PULL_MESSAGE`, `UPDATE_CONSUMER_OFFSET`, `LOCK_BATCH_MQ`, …) and the HA stream.

use mqcheck_invariants::MsgId;
use stateright::actor::Id;
use std::fmt;

/// A queue of the topic on one broker group (`queueId`).
pub type QueueId = u32;

/// A `MessageQueue`: the broker group (`brokerName`) and the queue on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mq {
    pub group: u32,
    pub queue: QueueId,
}

impl fmt::Display for Mq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", group_name(self.group), self.queue)
    }
}

/// A broker group's `brokerName`: `broker-a`, `broker-b`, …
pub fn group_name(group: u32) -> String {
    format!("broker-{}", char::from(b'a' + group as u8))
}

/// One message as the CommitLog holds it: its id (the UNIQ_KEY, the same on every retry), the
/// queue it was put to, and its sharding key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Message {
    pub msg: MsgId,
    pub queue: QueueId,
    pub key: Option<u32>,
    /// `reconsumeTimes`: how often a consumer sent it back (0 for what a producer sent).
    pub reconsume: u32,
    /// What it is to a transaction: nothing, or a half message or an op message.
    pub tran: Tran,
    /// `storeTimestamp`: the master's clock (ms) when its CommitLog appended the message
    /// (`DefaultAppendMessageCallback.doAppend`); replicas keep the master's. Kept only when
    /// consumers rewind by time (`--rewind`), 0 otherwise.
    pub store_ms: u64,
}

/// A message's part in a transactional send (`MessageSysFlag`, the transaction properties).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tran {
    /// An ordinary message.
    Plain,
    /// From a `TransactionMQProducer`, for the queue it names (`PROPERTY_TRANSACTION_PREPARED`):
    /// the broker stores it as a half message.
    Prepared,
    /// A half message in `RMQ_SYS_TRANS_HALF_TOPIC`, invisible to consumers: the queue it is
    /// for (`REAL_QID`) and how often the broker checked it back (`TRANSACTION_CHECK_TIMES`,
    /// 0 while unset). Its producer group is its producer's.
    Half { real_queue: QueueId, checks: u32 },
    /// An op message in `RMQ_SYS_TRANS_OP_HALF_TOPIC` (tag `d`): the half message at this
    /// CommitLog position was committed or rolled back.
    Op { half: u64 },
}

/// `LocalTransactionState`: what the application's local transaction came to, as the end
/// request (`EndTransactionRequestHeader.commitOrRollback`) carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LocalTransactionState {
    CommitMessage,
    RollbackMessage,
    Unknow,
}

impl LocalTransactionState {
    pub fn name(self) -> &'static str {
        match self {
            LocalTransactionState::CommitMessage => "COMMIT_MESSAGE",
            LocalTransactionState::RollbackMessage => "ROLLBACK_MESSAGE",
            LocalTransactionState::Unknow => "UNKNOW",
        }
    }
}

/// `SendStatus`: what a stored message's `SendResult` says. All four mean the master stored it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SendStatus {
    SendOk,
    FlushDiskTimeout,
    FlushSlaveTimeout,
    SlaveNotAvailable,
}

impl SendStatus {
    pub fn name(self) -> &'static str {
        match self {
            SendStatus::SendOk => "SEND_OK",
            SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
            SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
        }
    }
}

/// The response codes of a failed `SEND_MESSAGE` the model produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SendError {
    /// SERVICE_NOT_AVAILABLE: the store is a slave (`DefaultMessageStore.checkStoreStatus`),
    /// as a DLedger follower, or a leader not yet master, is.
    ServiceNotAvailable,
    /// SYSTEM_ERROR "in-sync replicas not enough": 5.x for DLedger's `WAIT_QUORUM_ACK_TIMEOUT`
    /// (`DLedgerCommitLog.asyncPutMessage` → `IN_SYNC_REPLICAS_NOT_ENOUGH`).
    InSyncReplicasNotEnough,
    /// SYSTEM_ERROR "[PC_SYNCHRONIZED]broker busy": 4.9 for the same timeout
    /// (→ `OS_PAGECACHE_BUSY`).
    BrokerBusy,
}

impl SendError {
    pub fn name(self) -> &'static str {
        match self {
            SendError::ServiceNotAvailable => "SERVICE_NOT_AVAILABLE",
            SendError::InSyncReplicasNotEnough => "SYSTEM_ERROR in-sync replicas not enough",
            SendError::BrokerBusy => "SYSTEM_ERROR [PC_SYNCHRONIZED]broker busy",
        }
    }
}

/// `VoteResponse.RESULT`, as `DLedgerLeaderElector.handleVote` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VoteResult {
    Accept,
    /// REJECT_EXPIRED_LEDGER_TERM or REJECT_SMALL_LEDGER_END_INDEX: the voter's ledger is
    /// more up to date.
    BiggerLedger,
    /// REJECT_EXPIRED_VOTE_TERM or REJECT_TERM_SMALL_THAN_LEDGER: the voter knows a larger term.
    ExpiredTerm,
    /// REJECT_TERM_NOT_READY: the voter stepped up to the candidate's larger term first.
    TermNotReady,
    AlreadyVoted,
    AlreadyHasLeader,
}

/// `HeartBeatResponse` codes (`DLedgerLeaderElector.handleHeartBeat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeartbeatCode {
    Success,
    ExpiredTerm,
    InconsistentLeader,
    TermNotReady,
}

/// One `PushEntryRequest` (0.3.1.2's types; positions are entry counts, so an entry's index
/// is its position).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Push {
    /// COMPARE: does the follower hold this entry (by index and term) at `index`?
    Compare { index: u64, term: u64, msg: Message },
    /// TRUNCATE: keep the entries before `index`, write the leader's entry at `index`, drop the
    /// rest (`DLedgerMmapFileStore.truncate(entry, …)`).
    Truncate { index: u64, term: u64, msg: Message },
    /// APPEND: entries from `from`, each with its term.
    Append { from: u64, entries: Vec<(u64, Message)> },
    /// COMMIT: only the committed index.
    Commit,
}

/// What the controller knows of a broker group (`GetReplicaInfoResponseHeader`,
/// `ElectMasterResponseHeader`, `RoleChangeNotifyEntry`): its master by brokerControllerId
/// (brokerId + 1 of the model's broker; `None` while it has none), the master epoch, and the
/// SyncStateSet with its epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaInfo {
    pub master: Option<u32>,
    pub master_epoch: u32,
    pub sync_state_set: Vec<u32>,
    pub sync_state_set_epoch: u32,
}

/// One broker group in a route (`BrokerData`): the addresses the NameServer has live.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerData {
    /// brokerId 0.
    pub master: Option<Id>,
    pub slaves: Vec<Id>,
}

impl BrokerData {
    /// `findBrokerAddressInSubscribe`: the master, or while it is gone a slave.
    pub fn readable(&self) -> Option<Id> {
        self.master.or(self.slaves.first().copied())
    }
}

/// `TopicRouteData`: every broker group, by index.
pub type Route = Vec<BrokerData>;

/// What a pull found (`GetMessageStatus` as the client sees it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PullStatus {
    /// FOUND: messages with their ConsumeQueue offsets.
    Found(Vec<(u64, Message)>),
    /// The long poll ended with nothing new (PULL_NOT_FOUND after the hold).
    NoNewMsg,
    /// PULL_OFFSET_MOVED: the offset is past the queue's end on a master; go on from here.
    OffsetMoved(u64),
    /// PULL_RETRY_IMMEDIATELY: a slave that has not got that far.
    Retry,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RocketMsg {
    /// Broker → NameServer, every `registerNameServerPeriod`.
    RegisterBroker { group: u32, broker_id: u32 },
    /// Client → NameServer: `GET_ROUTEINFO_BY_TOPIC`.
    GetRouteInfo,
    RouteInfo(Route),
    /// Producer → master.
    SendMessage { request: u64, message: Message },
    /// `offset` is the message's CommitLog position (the `offsetMsgId`), which an end request
    /// names a half message by.
    SendResult {
        request: u64,
        status: SendStatus,
        offset: u64,
    },
    /// Producer → the master that stored a half message: `END_TRANSACTION`, one-way, with the
    /// application's local transaction state; `from_check` when it answers a check-back.
    EndTransaction {
        half: u64,
        msg: MsgId,
        state: LocalTransactionState,
        from_check: bool,
    },
    /// Master → a producer of the half message's group: `CHECK_TRANSACTION_STATE` (one-way),
    /// naming the copy of the half message the check put back.
    CheckTransactionState { half: u64, msg: MsgId },
    /// Producer → every master of its route: `HEART_BEAT` with its producer group, which
    /// puts its channel in the broker's `ProducerManager`.
    ProducerHeartbeat { group: u32 },
    /// Slave → master (`HAClient.reportSlaveMaxOffset`): what the slave has, and so where the
    /// master's transfer goes on.
    HaReport { offset: u64 },
    /// Master → slave (`HAConnection.WriteSocketService`): CommitLog entries from `from`.
    HaTransfer { from: u64, entries: Vec<Message> },
    /// Consumer → every broker: `HEART_BEAT` with its consumer group.
    Heartbeat { consumer: u32 },
    /// Broker → consumers of the group: `NOTIFY_CONSUMER_IDS_CHANGED` (one-way).
    ConsumerIdsChanged,
    GetConsumerList { request: u64 },
    ConsumerList { request: u64, consumers: Vec<u32> },
    QueryConsumerOffset { queue: QueueId },
    ConsumerOffset { queue: QueueId, offset: u64 },
    /// `GET_MAX_OFFSET`: where a BROADCASTING consumer without a local offset starts
    /// (`CONSUME_FROM_LAST_OFFSET` on first start).
    GetMaxOffset { queue: QueueId },
    MaxOffset { queue: QueueId, offset: u64 },
    /// `PULL_MESSAGE`, carrying the consumer's offset for the broker to commit (to a master).
    Pull {
        request: u64,
        queue: QueueId,
        offset: u64,
        commit: Option<u64>,
    },
    PullResult {
        request: u64,
        queue: QueueId,
        status: PullStatus,
    },
    /// Consumer → the message's master: `CONSUMER_SEND_MSG_BACK`, the handler asked to
    /// reconsume it later.
    SendBack { request: u64, message: Message },
    SendBackResult { request: u64 },
    /// One-way: `UPDATE_CONSUMER_OFFSET`.
    UpdateConsumerOffset { queue: QueueId, offset: u64 },
    /// Orderly consumers: `LOCK_BATCH_MQ` and its answer, the queues now locked for it.
    LockBatch { request: u64, consumer: u32, queues: Vec<QueueId> },
    Locked { request: u64, queues: Vec<QueueId> },
    /// `UNLOCK_BATCH_MQ` (one-way here).
    Unlock { consumer: u32, queues: Vec<QueueId> },
    /// Consumer (as the admin tool) → a group's master: `INVOKE_BROKER_TO_RESET_OFFSET`
    /// (`resetOffsetByTime`) for one queue of the topic, to the first message stored at or after
    /// `timestamp`. 5.3 resets the queue on the broker (`useServerSideResetOffset`); 4.9 resets
    /// every queue of the topic through the clients (`Broker2Client.resetOffset`).
    ResetOffset { queue: QueueId, timestamp: u64 },
    /// 4.9 broker → each consumer of the group: `RESET_CONSUMER_CLIENT_OFFSET` (one-way), the
    /// offset of every queue of the topic on this broker.
    ResetConsumerClientOffset { offsets: Vec<(QueueId, u64)> },
    /// A broker's host → the time server (the NameServer's host, whose clock is correct): the
    /// NTP daemon's poll.
    NtpQuery,
    /// The time server's clock, in ms.
    NtpTime { ms: u64 },
    /// A broker's error response to `SEND_MESSAGE` (`SendMessageProcessor`), which the client
    /// throws as an `MQBrokerException`; both codes are in `retryResponseCodes`, so the send is
    /// retried on another broker group.
    SendError { request: u64, code: SendError },
    /// DLedger (`DLedgerLeaderElector`): a candidate's `VoteRequest`, with its ledger's end
    /// (`ledgerEndTerm`, and the number of entries: `ledgerEndIndex` + 1).
    DlVote { term: u64, end_term: u64, end: u64 },
    /// The answer to the vote of `round` (the candidate's term), with the voter's term.
    DlVoteResult { round: u64, term: u64, result: VoteResult },
    /// The leader's `HeartBeatRequest`, every `heartBeatTimeIntervalMs`.
    DlHeartbeat { term: u64 },
    DlHeartbeatResult { term: u64, code: HeartbeatCode },
    /// DLedger (`DLedgerEntryPusher.EntryDispatcher` → `EntryHandler`): a `PushEntryRequest`
    /// of the leader's term, carrying the leader's committed index (as a count of entries).
    /// `seq` numbers the leader's requests, so that an answer is matched to its request.
    DlPush { term: u64, seq: u64, push: Push, commit: u64 },
    /// The follower's `PushEntryResponse`: success or INCONSISTENT_STATE, and its ledger's end
    /// (entries).
    DlPushResult { term: u64, seq: u64, ok: bool, end: u64 },
    /// The connection to the peer closed or was reset: every request on it fails at once
    /// (`NettyRemotingAbstract.failFast`).
    Disconnected,
    /// Controller mode, broker → controller: `CONTROLLER_APPLY_BROKER_ID` and
    /// `CONTROLLER_REGISTER_BROKER` (`ReplicasManager.register`), the group and brokerId taken
    /// from the sender.
    CtlRegister,
    /// The controller's answer: the group's replica info, its master only if alive.
    CtlRegistered(ReplicaInfo),
    /// `BROKER_HEARTBEAT` every `brokerHeartbeatInterval`: the broker's last epoch and
    /// CommitLog end (`BrokerLiveInfo`), what the election policy sorts by.
    CtlHeartbeat { epoch: u32, max_offset: u64 },
    /// `CONTROLLER_ELECT_MASTER` from a broker (`brokerElect`).
    CtlElect,
    /// Its answer: the master (possibly the one that still exists), or none.
    CtlElected(ReplicaInfo),
    /// `CONTROLLER_GET_REPLICA_INFO` (`schedulingSyncBrokerMetadata`).
    CtlGetReplicaInfo,
    CtlReplicaInfo(ReplicaInfo),
    /// `CONTROLLER_ALTER_SYNC_STATE_SET` from the master: the new set, fenced by the master's
    /// epoch and the set's epoch.
    CtlAlterSyncStateSet {
        master_epoch: u32,
        sync_state_set: Vec<u32>,
        sync_state_set_epoch: u32,
    },
    /// Its answer: the set and its new epoch, or `None` when refused.
    CtlAlterSyncStateSetResult(Option<(Vec<u32>, u32)>),
    /// `NOTIFY_BROKER_ROLE_CHANGED` (one-way) to every live broker of a group after a
    /// controller-triggered election.
    CtlNotifyRoleChanged(ReplicaInfo),
    /// Controller mode, slave → master (`AutoSwitchHAClient.sendHandshakeHeader`): a new HA
    /// connection, with the slave's brokerControllerId.
    AsHandshake { slave: u32 },
    /// The master's handshake (`AutoSwitchHAConnection.buildHandshakeBuffer`): its epoch
    /// entries (epoch, start offset) and its CommitLog end.
    AsHandshakeResult { epochs: Vec<(u32, u64)>, end: u64 },
    /// A transfer (`buildTransferHeaderBuffer`): entries from `from`, all of one epoch (with
    /// its start offset), and the master's confirm offset; no entries is a heartbeat.
    AsTransfer {
        from: u64,
        epoch: u32,
        epoch_start: u64,
        confirm: u64,
        entries: Vec<Message>,
    },
}
