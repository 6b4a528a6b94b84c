//! Disk semantics shared by every model: what survives which crash.
//!
//! An actor's `Storage` is what it handed to the operating system. Part of it was fsynced; the
//! rest sits in the page cache. A process crash (`crash`) keeps both: the kernel still holds the
//! page cache. A machine crash (`power`) keeps only what was fsynced. Each broker's flush policy
//! decides what is fsynced and when; the drivers only call [`Durable::after_power_loss`].

/// Storage that knows which part of itself survives a power loss.
pub trait Durable: Clone + std::fmt::Debug + PartialEq + std::hash::Hash {
    /// The storage as it is after the machine lost power: unsynced writes are gone.
    fn after_power_loss(&self) -> Self;
}
