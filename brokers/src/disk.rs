//! Disk semantics shared by every model: what survives which crash.
//!
//! An actor's `Storage` is what it handed to the operating system. Part of it was fsynced; the
//! rest sits in the page cache. A process crash (`crash`) keeps both: the kernel still holds the
//! page cache. A machine crash (`power`) keeps only what was fsynced. Each broker's flush policy
//! decides what is fsynced and when; the drivers only call [`Durable::after_power_loss`].

use crate::AppLog;

/// Storage that knows which part of itself survives a power loss.
pub trait Durable: Clone + std::fmt::Debug + PartialEq + std::hash::Hash {
    /// The storage as it is after the machine lost power: unsynced writes are gone.
    fn after_power_loss(&self) -> Self;
}

/// A client application's record is its own durable output, kept whole.
impl Durable for AppLog {
    fn after_power_loss(&self) -> Self {
        self.clone()
    }
}

/// What a node keeps across a restart: a server's own storage `S` (logs, checkpoints, a message
/// store), or a client application's record of what it observed — with, for a client library that
/// keeps files of its own (RocketMQ's BROADCASTING `offsets.json`), those files.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Disk<S> {
    Server(S),
    Client(AppLog),
    ClientFiles(AppLog, S),
}

impl<S: Durable> Durable for Disk<S> {
    fn after_power_loss(&self) -> Self {
        match self {
            Disk::Server(disk) => Disk::Server(disk.after_power_loss()),
            Disk::Client(log) => Disk::Client(log.after_power_loss()),
            Disk::ClientFiles(log, files) => {
                Disk::ClientFiles(log.after_power_loss(), files.after_power_loss())
            }
        }
    }
}

impl<S> Disk<S> {
    /// A server's storage (`None` for a client).
    pub fn server(&self) -> Option<&S> {
        match self {
            Disk::Server(disk) => Some(disk),
            Disk::Client(_) | Disk::ClientFiles(..) => None,
        }
    }

    /// The files a client library kept beside its application's log (`None` for a server).
    pub fn client_files(&self) -> Option<&S> {
        match self {
            Disk::ClientFiles(_, files) => Some(files),
            Disk::Client(_) | Disk::Server(_) => None,
        }
    }

    /// A client's application log (`None` for a server): what [`crate::System::app_log`] reads.
    pub fn app_log(&self) -> Option<&AppLog> {
        match self {
            Disk::Client(log) | Disk::ClientFiles(log, _) => Some(log),
            Disk::Server(_) => None,
        }
    }

    /// The application log a client restarts with: what it saved, or an empty one.
    pub fn restored_app_log(storage: &Option<Self>) -> AppLog {
        storage
            .as_ref()
            .and_then(Disk::app_log)
            .cloned()
            .unwrap_or_default()
    }
}
