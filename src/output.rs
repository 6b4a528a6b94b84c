//! Where the CLI writes: stdout, and the files its flags name. Files are opened before any work
//! starts, so a path that cannot be written is bad input at once, not after the run; a write to
//! stdout that fails (a full disk, `> /dev/full`) is reported and makes the exit status 2.

use mqcheck_brokers::ConfigError;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SWEEPING: AtomicBool = AtomicBool::new(false);
static CHECKING: AtomicBool = AtomicBool::new(false);

/// Ctrl-C: a sweep under way stops after the runs it has started and reports what it finished;
/// a check under way stops its search and reports every property's verdict so far; anything
/// else (the Explorer, a second Ctrl-C) ends at once, inconclusive.
pub fn on_interrupt() {
    let (sweeping, checking) = (
        SWEEPING.load(Ordering::SeqCst),
        CHECKING.load(Ordering::SeqCst),
    );
    if INTERRUPTED.swap(true, Ordering::SeqCst) || !(sweeping || checking) {
        std::process::exit(i32::from(crate::INCONCLUSIVE));
    }
    if checking {
        eprintln!(
            "\ninterrupted: stopping the search, then reporting every property's verdict so far"
        );
    } else {
        eprintln!("\ninterrupted: finishing the runs under way, then reporting the seeds done");
    }
}

/// Has the user interrupted the sweep or the check?
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Marks a sweep as under way, so Ctrl-C stops it gracefully rather than the process.
pub fn sweeping(on: bool) {
    SWEEPING.store(on, Ordering::SeqCst);
}

/// Marks a check's search as under way, so Ctrl-C stops the search rather than the process.
pub fn checking(on: bool) {
    CHECKING.store(on, Ordering::SeqCst);
}

/// Writes to stdout; a closed pipe (`mqcheck list | head`) ends the output quietly, any other
/// failure is reported once on stderr and remembered for the exit status.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe && !STDOUT_FAILED.swap(true, Ordering::SeqCst)
        {
            eprintln!("error: cannot write to stdout: {e}");
        }
    }
}

/// Did a write to stdout fail?
pub fn stdout_failed() -> bool {
    STDOUT_FAILED.load(Ordering::SeqCst)
}

/// A file a flag names (`--json FILE`, `--svg FILE`, …), created before the work starts.
pub struct OutputFile {
    flag: &'static str,
    path: PathBuf,
    file: File,
}

impl OutputFile {
    pub fn create(flag: &'static str, path: &Path) -> Result<Self, ConfigError> {
        let file = File::create(path).map_err(|e| cannot(flag, path, &e))?;
        Ok(OutputFile {
            flag,
            path: path.to_path_buf(),
            file,
        })
    }

    /// Opens the file `path` names, if it names one.
    pub fn maybe(flag: &'static str, path: Option<&PathBuf>) -> Result<Option<Self>, ConfigError> {
        path.map(|p| Self::create(flag, p)).transpose()
    }

    pub fn write(&mut self, text: &str) -> Result<(), ConfigError> {
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| cannot(self.flag, &self.path, &e))
    }

    /// Nothing to write after all (no counterexample to draw): the file is removed again.
    pub fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A file written one line at a time while a sweep runs (`--jsonl`): lines from every worker,
/// in the order runs finish. The first write error is kept and reported when the sweep ends.
pub struct Stream {
    file: Mutex<(OutputFile, Option<ConfigError>)>,
}

impl Stream {
    pub fn maybe(flag: &'static str, path: Option<&PathBuf>) -> Result<Option<Self>, ConfigError> {
        Ok(OutputFile::maybe(flag, path)?.map(|file| Stream {
            file: Mutex::new((file, None)),
        }))
    }

    pub fn line(&self, value: &impl Serialize) {
        let mut text = serde_json::to_string(value).expect("a line serializes");
        text.push('\n');
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let (file, error) = &mut *guard;
        if error.is_none() {
            *error = file.write(&text).err();
        }
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        let (_, error) = self.file.into_inner().unwrap_or_else(|e| e.into_inner());
        error.map_or(Ok(()), Err)
    }
}

fn cannot(flag: &str, path: &Path, e: &std::io::Error) -> ConfigError {
    ConfigError::new(
        flag,
        format!("cannot write --{flag} {}: {e}", path.display()),
    )
}
