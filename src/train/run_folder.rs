//! [`RunFolder`]: the folder a training run writes into, and what happens to a
//! run already there. A finished run is never destroyed by starting again: it
//! is refused, resumed, or — when the caller asks to overwrite it — moved into
//! a dated backup folder at the moment the new run writes its first file, and
//! deleted only once the new run's first checkpoint is on disk.
//!
//! ```no_run
//! use vaekit::train::{RunFolder, RunPolicy};
//!
//! // Checks only: nothing is written or moved yet.
//! let folder = RunFolder::open("out/my-run", RunPolicy::Overwrite)?;
//! // … load and check the data, build the model …
//! // The trainer moves the old run aside before its first write and deletes
//! // the backup after its first checkpoint:
//! // Trainer::new(config)?.run_folder(folder).fit(&model, &train, &test)?;
//! # Ok::<(), vaekit::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::history::HISTORY_FILE;
use super::state::{BEST_MODEL_FILE, CHECKPOINT_FILE};
use crate::{Error, Result};

/// The prefix of the backup folders [`RunFolder::prepare`] creates inside a
/// run folder: `backup-20260101T120000Z`.
pub const BACKUP_PREFIX: &str = "backup-";

/// What to do with a run already in the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RunPolicy {
    /// Refuse a folder that holds a run (the default).
    #[default]
    Refuse,
    /// Continue the run in the folder from its checkpoint.
    Resume,
    /// Start anew; the old run is kept in a backup folder until the new run's
    /// first checkpoint is written.
    Overwrite,
}

/// Where [`RunFolder`] stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Checked; nothing written.
    Opened,
    /// The folder exists; the old run (if any) is in the backup folder.
    Prepared { backup: Option<PathBuf> },
    /// The new run's first checkpoint is written and the backup deleted.
    Committed,
}

/// The output folder of one training run, checked against a [`RunPolicy`].
///
/// [`open`](Self::open) only checks; [`prepare`](Self::prepare) (called right
/// before the first file of the new run is written) creates the folder and,
/// under [`RunPolicy::Overwrite`], moves the old run's files into a dated
/// backup folder inside it; [`commit`](Self::commit) (called once the new
/// run's first checkpoint is written) deletes that backup. A folder dropped
/// between the two puts the old files back, so a run that fails before its
/// first checkpoint leaves the old run as it was. A process killed in between
/// leaves the backup folder, never nothing.
///
/// A folder holds a run if it has a `checkpoint.safetensors`, a
/// `best.safetensors` or a non-empty `history.jsonl` (a run killed before its
/// first epoch leaves only an empty history, and nothing to lose).
/// [`Trainer::run_folder`](super::Trainer::run_folder) drives the two steps.
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    policy: RunPolicy,
    existing: Vec<&'static str>,
    stage: Stage,
}

impl RunFolder {
    /// Checks `dir` against `policy`; nothing is written.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (`out`) if `dir` holds a run under
    /// [`RunPolicy::Refuse`]; (`resume`) under [`RunPolicy::Resume`] if it
    /// holds no checkpoint; [`Error::Io`] if `dir` exists and is not a folder.
    pub fn open(dir: impl AsRef<Path>, policy: RunPolicy) -> Result<Self> {
        let mut folders = Self::open_each(&[dir.as_ref().to_path_buf()], policy)?;
        Ok(folders.remove(0))
    }

    /// Checks several run folders (an example that trains several models)
    /// together, so that none is touched unless all pass: as
    /// [`open`](Self::open), except that [`RunPolicy::Resume`] needs a
    /// checkpoint in at least one of them (the others start anew) and refuses
    /// one that holds a run without a checkpoint.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), naming the first folder at fault;
    /// [`Error::Config`] (`out`) for an empty list.
    pub fn open_each(dirs: &[PathBuf], policy: RunPolicy) -> Result<Vec<Self>> {
        if dirs.is_empty() {
            return Err(Error::config("out", "no run folder named"));
        }
        let mut folders = Vec::with_capacity(dirs.len());
        for dir in dirs {
            if dir.exists() && !dir.is_dir() {
                return Err(Error::io(
                    dir,
                    std::io::Error::other("exists and is not a folder"),
                ));
            }
            folders.push(Self {
                dir: dir.clone(),
                policy,
                existing: run_files(dir),
                stage: Stage::Opened,
            });
        }
        match policy {
            RunPolicy::Overwrite => {}
            RunPolicy::Resume => {
                if !folders
                    .iter()
                    .any(|f| f.existing.contains(&CHECKPOINT_FILE))
                {
                    let named = folders
                        .iter()
                        .map(|f| f.dir.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(Error::config(
                        "resume",
                        format!("{named} holds no {CHECKPOINT_FILE} to resume from"),
                    ));
                }
                if let Some(f) = folders
                    .iter()
                    .find(|f| !f.existing.is_empty() && !f.existing.contains(&CHECKPOINT_FILE))
                {
                    return Err(Error::config(
                        "resume",
                        format!(
                            "{} holds a run ({}) but no {CHECKPOINT_FILE} to resume it from; pass --overwrite to start anew",
                            f.dir.display(),
                            f.existing.join(", ")
                        ),
                    ));
                }
            }
            RunPolicy::Refuse => {
                if let Some(f) = folders.iter().find(|f| !f.existing.is_empty()) {
                    return Err(Error::config(
                        "out",
                        format!(
                            "{} already holds a run ({}); pass --resume to continue it or --overwrite to start anew",
                            f.dir.display(),
                            f.existing.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(folders)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The policy it was opened with.
    pub fn policy(&self) -> RunPolicy {
        self.policy
    }

    /// The run files found in the folder when it was opened.
    pub fn existing_files(&self) -> &[&'static str] {
        &self.existing
    }

    /// Whether the run in the folder is to be resumed ([`RunPolicy::Resume`]
    /// and a checkpoint there) rather than started.
    pub fn resumes(&self) -> bool {
        self.policy == RunPolicy::Resume && self.existing.contains(&CHECKPOINT_FILE)
    }

    /// The backup folder holding the old run, between [`prepare`](Self::prepare)
    /// and [`commit`](Self::commit).
    pub fn backup(&self) -> Option<&Path> {
        match &self.stage {
            Stage::Prepared { backup } => backup.as_deref(),
            _ => None,
        }
    }

    /// Makes the folder ready for the new run's first file: creates it and,
    /// under [`RunPolicy::Overwrite`], moves the old run's files into a new
    /// backup folder `backup-<UTC date and time>` inside it. Call it after
    /// every check on the data, the model and the settings has passed. A
    /// second call does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the folder cannot be created or a file moved (the
    /// files already moved are put back).
    pub fn prepare(&mut self) -> Result<()> {
        if self.stage != Stage::Opened {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut backup = None;
        if self.policy == RunPolicy::Overwrite && !self.existing.is_empty() {
            let folder = new_backup_folder(&self.dir)?;
            for (i, file) in self.existing.iter().enumerate() {
                let (from, to) = (self.dir.join(file), folder.join(file));
                if let Err(e) = std::fs::rename(&from, &to) {
                    move_back(&self.dir, &folder, &self.existing[..i]);
                    let _ = std::fs::remove_dir(&folder);
                    return Err(Error::io(from, e));
                }
            }
            backup = Some(folder);
        }
        self.stage = Stage::Prepared { backup };
        Ok(())
    }

    /// Deletes the backup folder once the new run's first checkpoint is
    /// written; a second call does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (`out`) if it is called before
    /// [`prepare`](Self::prepare) or before the folder holds a
    /// `checkpoint.safetensors` (the backup is kept); [`Error::Io`] if the
    /// backup cannot be deleted.
    pub fn commit(&mut self) -> Result<()> {
        let backup = match &self.stage {
            Stage::Committed => return Ok(()),
            Stage::Opened => {
                return Err(Error::config(
                    "out",
                    format!("{}: commit before prepare", self.dir.display()),
                ))
            }
            Stage::Prepared { backup } => backup.clone(),
        };
        if !self.dir.join(CHECKPOINT_FILE).is_file() {
            return Err(Error::config(
                "out",
                format!(
                    "{} holds no {CHECKPOINT_FILE} of the new run yet; the old run is kept",
                    self.dir.display()
                ),
            ));
        }
        self.stage = Stage::Committed;
        if let Some(folder) = backup {
            std::fs::remove_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
        }
        Ok(())
    }
}

impl Drop for RunFolder {
    /// Puts the old run back if the new one never reached its first
    /// checkpoint ([`commit`](Self::commit) was not called).
    fn drop(&mut self) {
        if let Stage::Prepared {
            backup: Some(folder),
        } = &self.stage
        {
            move_back(&self.dir, folder, &self.existing);
            let _ = std::fs::remove_dir(folder);
        }
    }
}

/// Moves `files` from `backup` back into `dir`, over what the new run wrote.
fn move_back(dir: &Path, backup: &Path, files: &[&str]) {
    for file in files {
        let _ = std::fs::rename(backup.join(file), dir.join(file));
    }
}

/// Creates `dir/backup-<UTC now>` (with `-2`, `-3`, … if that exists).
fn new_backup_folder(dir: &Path) -> Result<PathBuf> {
    let stamp = utc_stamp(SystemTime::now());
    for n in 1..1000 {
        let name = if n == 1 {
            format!("{BACKUP_PREFIX}{stamp}")
        } else {
            format!("{BACKUP_PREFIX}{stamp}-{n}")
        };
        let path = dir.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Err(Error::io(
        dir,
        std::io::Error::other("999 backup folders of the same second exist"),
    ))
}

/// `20260101T120000Z`: `t` in UTC, to the second.
fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The files of a run present in `dir` (a history only if it is not empty).
fn run_files(dir: &Path) -> Vec<&'static str> {
    let mut files = Vec::new();
    let history = std::fs::metadata(dir.join(HISTORY_FILE));
    if history.is_ok_and(|m| m.len() > 0) {
        files.push(HISTORY_FILE);
    }
    for file in [CHECKPOINT_FILE, BEST_MODEL_FILE] {
        if dir.join(file).exists() {
            files.push(file);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        let at = |s: u64| utc_stamp(UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "19700101T000000Z");
        // 2000-02-29 12:34:56 UTC
        assert_eq!(at(951_827_696), "20000229T123456Z");
        // 2026-12-31 23:59:59 UTC
        assert_eq!(at(1_798_761_599), "20261231T235959Z");
    }
}
