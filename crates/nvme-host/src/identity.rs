//! This host's NVMe identity: its host NQN and host id.
//!
//! Targets recognise hosts by these two values (the RDS may allow hosts by NQN),
//! and newer kernels refuse a host NQN that reappears with another host id, so
//! the identity must stay the same across restarts. The host's own
//! `/etc/nvme/hostnqn` and `/etc/nvme/hostid` win when present, so the driver
//! uses the same identity as nvme-cli on that host; otherwise the plugin keeps
//! one of its own in its state directory, generated once.
//!
//! Resolution, for each of the two sources:
//! - the NQN comes from its file; failing that, from the id
//!   (`nqn.2014-08.org.nvmexpress:uuid:<id>`); failing that, it is new;
//! - the id comes from its file; failing that, from an NQN of the
//!   `…:uuid:<uuid>` form; failing that, it is new.
//!
//! When `/etc/nvme/hostnqn` exists but gives no id, the id is the one kept in the
//! state directory. Files that exist but hold nonsense are an error, never
//! silently replaced: changing identity can lock the host out of its volumes.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::NvmeError;
use crate::options::check_nqn;

/// The prefix of NQNs derived from a UUID (NVMe base specification, 4.5).
pub const UUID_NQN_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

/// The identity this host presents to targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// The host NQN (`hostnqn=`).
    pub nqn: String,
    /// The host id, a UUID (`hostid=`).
    pub id: String,
}

impl HostIdentity {
    /// Loads `<etc_nvme>/hostnqn` and `<etc_nvme>/hostid` when present (trimmed
    /// and validated); otherwise the identity kept in `<state_dir>/hostnqn` and
    /// `<state_dir>/hostid`, generated on first use (NQN
    /// `nqn.2014-08.org.nvmexpress:uuid:<uuid v4>`, id the same UUID) and saved
    /// atomically (temporary file, fsync, rename), so every restart uses the
    /// same identity. See the module documentation for partial files.
    ///
    /// Only one process should create the identity at a time: two first starts
    /// racing would each save their own, and the last rename wins.
    pub fn load_or_create(etc_nvme: &Path, state_dir: &Path) -> Result<HostIdentity, NvmeError> {
        if let Some(nqn) = read_nqn(&etc_nvme.join("hostnqn"))? {
            let id = match read_id(&etc_nvme.join("hostid"))? {
                Some(id) => id,
                None => match uuid_of_nqn(&nqn) {
                    Some(id) => id,
                    None => state_id(state_dir, None)?,
                },
            };
            return Ok(HostIdentity { nqn, id });
        }
        let nqn_path = state_dir.join("hostnqn");
        let file_nqn = read_nqn(&nqn_path)?;
        let id = state_id(state_dir, file_nqn.as_deref())?;
        let nqn = match file_nqn {
            Some(nqn) => nqn,
            None => {
                let nqn = format!("{UUID_NQN_PREFIX}{id}");
                save(state_dir, "hostnqn", &nqn)?;
                nqn
            }
        };
        Ok(HostIdentity { nqn, id })
    }
}

/// Where the host NQN [`HostIdentity::load_or_create`] would use comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostNqnSource {
    /// The host's own, `<etc_nvme>/hostnqn`.
    Host {
        /// The file.
        path: PathBuf,
        /// The NQN in it.
        nqn: String,
    },
    /// The plugin's, kept in `<state_dir>/hostnqn` since an earlier start.
    State {
        /// The file.
        path: PathBuf,
        /// The NQN in it.
        nqn: String,
    },
    /// None yet: the plugin makes one at its first start and keeps it here.
    ToBeGenerated {
        /// The file it will be saved in.
        path: PathBuf,
    },
}

/// The host NQN [`HostIdentity::load_or_create`] would use, and where it
/// comes from, without creating or changing anything. Every identity file
/// that start-up would read (the host ids too) is read and judged the same
/// way, so a file start-up would refuse is an error here as well.
pub fn find_host_nqn(etc_nvme: &Path, state_dir: &Path) -> Result<HostNqnSource, NvmeError> {
    let etc_path = etc_nvme.join("hostnqn");
    if let Some(nqn) = read_nqn(&etc_path)? {
        if read_id(&etc_nvme.join("hostid"))?.is_none() && uuid_of_nqn(&nqn).is_none() {
            read_id(&state_dir.join("hostid"))?;
        }
        return Ok(HostNqnSource::Host {
            path: etc_path,
            nqn,
        });
    }
    let state_path = state_dir.join("hostnqn");
    let found = read_nqn(&state_path)?;
    read_id(&state_dir.join("hostid"))?;
    Ok(match found {
        Some(nqn) => HostNqnSource::State {
            path: state_path,
            nqn,
        },
        None => HostNqnSource::ToBeGenerated { path: state_path },
    })
}

/// What is wrong with `nqn` as a host NQN by the NVMe base specification
/// (section 4.5): it must be `nqn.<yyyy-mm>.<reverse domain>[:<anything>]`,
/// or `nqn.2014-08.org.nvmexpress:uuid:<uuid>`, of at most 223 bytes without
/// spaces, commas or `=`. `None` when nothing is. (The kernel itself takes
/// more; this is what targets may expect.)
pub fn nqn_format_problem(nqn: &str) -> Option<String> {
    if let Err(e) = check_nqn("hostnqn", nqn) {
        return Some(e.to_string());
    }
    if let Some(uuid) = nqn.strip_prefix(UUID_NQN_PREFIX) {
        return (!is_uuid(uuid))
            .then(|| format!("{nqn:?} has the UUID form, but {uuid:?} is not a UUID"));
    }
    let Some(rest) = nqn.strip_prefix("nqn.") else {
        return Some(format!("{nqn:?} does not start with \"nqn.\""));
    };
    let date = rest.get(..8).unwrap_or_default().as_bytes();
    let dated = date.len() == 8
        && date[..4].iter().all(u8::is_ascii_digit)
        && date[4] == b'-'
        && matches!(&date[5..7], [b'0', b'1'..=b'9'] | [b'1', b'0'..=b'2'])
        && date[7] == b'.';
    if !dated {
        return Some(format!(
            "{nqn:?} does not go on with a date and a dot after \"nqn.\" (nqn.yyyy-mm.)"
        ));
    }
    let domain = rest[8..].split(':').next().unwrap_or_default();
    if domain.is_empty() {
        return Some(format!(
            "{nqn:?} has no reverse domain name after its date (nqn.yyyy-mm.org.example:…)"
        ));
    }
    None
}

/// The id kept in `<state_dir>/hostid`; if absent, the UUID of `nqn` or a new
/// one, saved.
fn state_id(state_dir: &Path, nqn: Option<&str>) -> Result<String, NvmeError> {
    if let Some(id) = read_id(&state_dir.join("hostid"))? {
        return Ok(id);
    }
    let id = nqn.and_then(uuid_of_nqn).unwrap_or_else(new_uuid_v4);
    save(state_dir, "hostid", &id)?;
    Ok(id)
}

fn read_nqn(path: &Path) -> Result<Option<String>, NvmeError> {
    let Some(text) = read_trimmed(path)? else {
        return Ok(None);
    };
    check_nqn("hostnqn", &text).map_err(|e| NvmeError::BadIdentity {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Some(text))
}

fn read_id(path: &Path) -> Result<Option<String>, NvmeError> {
    let Some(text) = read_trimmed(path)? else {
        return Ok(None);
    };
    if !is_uuid(&text) {
        return Err(NvmeError::BadIdentity {
            path: path.to_owned(),
            reason: format!("{text:?} is not a UUID"),
        });
    }
    Ok(Some(text))
}

fn read_trimmed(path: &Path) -> Result<Option<String>, NvmeError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NvmeError::IdentityIo {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `<dir>/<name>` atomically: a temporary file in the same directory,
/// flushed to disk, renamed over the name, and the directory flushed too.
fn save(dir: &Path, name: &str, value: &str) -> Result<(), NvmeError> {
    let io_err = |action, path: &Path| {
        let path: PathBuf = path.to_owned();
        move |source| NvmeError::IdentityIo {
            action,
            path,
            source,
        }
    };
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let target = dir.join(name);
    let mut file = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(format!("{value}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err("write", &tmp))?;
    drop(file);
    fs::rename(&tmp, &target).map_err(io_err("rename into place", &target))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("flush", dir))?;
    tracing::info!(path = %target.display(), value, "saved a new NVMe host identity value");
    Ok(())
}

/// The UUID at the end of an NQN of the `nqn.2014-08.org.nvmexpress:uuid:` form.
pub fn uuid_of_nqn(nqn: &str) -> Option<String> {
    nqn.strip_prefix(UUID_NQN_PREFIX)
        .filter(|u| is_uuid(u))
        .map(str::to_owned)
}

/// Whether `s` is a UUID in its 36-character text form (either case).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A new random (version 4) UUID in lower-case text form.
pub fn new_uuid_v4() -> String {
    format_uuid_v4(rand::random())
}

/// Formats 16 random bytes as a version 4, RFC 4122 variant UUID.
fn format_uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NQN: &str = "nqn.2014-08.org.nvmexpress:uuid:6a1b2c3d-0000-4000-8000-0123456789ab";
    const ID: &str = "6a1b2c3d-0000-4000-8000-0123456789ab";

    fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join("etc/nvme");
        let state = t.path().join("state");
        (t, etc, state)
    }

    #[test]
    fn host_nqn_is_found_without_writing() {
        let (_t, etc, state) = dirs();
        assert_eq!(
            find_host_nqn(&etc, &state).unwrap(),
            HostNqnSource::ToBeGenerated {
                path: state.join("hostnqn")
            }
        );
        assert!(!state.exists(), "nothing is made");

        let made = HostIdentity::load_or_create(&etc, &state).unwrap();
        assert_eq!(
            find_host_nqn(&etc, &state).unwrap(),
            HostNqnSource::State {
                path: state.join("hostnqn"),
                nqn: made.nqn
            }
        );

        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("hostnqn"), format!("{NQN}\n")).unwrap();
        assert_eq!(
            find_host_nqn(&etc, &state).unwrap(),
            HostNqnSource::Host {
                path: etc.join("hostnqn"),
                nqn: NQN.into()
            }
        );
        fs::write(etc.join("hostid"), "not-a-uuid").unwrap();
        assert!(matches!(
            find_host_nqn(&etc, &state),
            Err(NvmeError::BadIdentity { path, .. }) if path == etc.join("hostid")
        ));
        fs::write(etc.join("hostnqn"), "nqn.x y").unwrap();
        assert!(matches!(
            find_host_nqn(&etc, &state),
            Err(NvmeError::BadIdentity { path, .. }) if path == etc.join("hostnqn")
        ));
    }

    #[test]
    fn host_nqn_formats() {
        for good in [
            NQN,
            "nqn.2024-01.org.example:node-7",
            "nqn.2014-08.org.nvmexpress.discovery",
            "nqn.1999-12.com.example",
        ] {
            assert_eq!(nqn_format_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "node-7",
            "nqn.node-7",
            "nqn.2024-13.org.example:x",
            "nqn.2024-1.org.example:x",
            "nqn.2024-01.:x",
            "nqn.2024-01.",
            "nqn.2014-08.org.nvmexpress:uuid:not-a-uuid",
            "nqn.2024-01.org.example:a b",
        ] {
            assert!(nqn_format_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn uuid_v4_format() {
        let u = format_uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert!(is_uuid(&u));
        assert!(is_uuid(&new_uuid_v4()));
        assert_ne!(new_uuid_v4(), new_uuid_v4());
        assert!(!is_uuid("6a1b2c3d00004000800001234567890ab"));
        assert!(!is_uuid("6a1b2c3d-0000-4000-8000-0123456789ag"));
    }

    #[test]
    fn etc_files_win_and_are_trimmed() {
        let (_t, etc, state) = dirs();
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("hostnqn"), format!("  {NQN}\n")).unwrap();
        fs::write(etc.join("hostid"), format!("{ID}\n")).unwrap();
        let id = HostIdentity::load_or_create(&etc, &state).unwrap();
        assert_eq!(
            id,
            HostIdentity {
                nqn: NQN.into(),
                id: ID.into()
            }
        );
        assert!(!state.exists(), "nothing is saved when /etc/nvme has both");
    }

    #[test]
    fn etc_hostnqn_alone_gives_its_uuid_as_id() {
        let (_t, etc, state) = dirs();
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("hostnqn"), NQN).unwrap();
        let id = HostIdentity::load_or_create(&etc, &state).unwrap();
        assert_eq!(id.id, ID);
    }

    #[test]
    fn etc_hostnqn_of_other_form_takes_a_kept_id() {
        let (_t, etc, state) = dirs();
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("hostnqn"), "nqn.2024-01.org.example:node-7").unwrap();
        let first = HostIdentity::load_or_create(&etc, &state).unwrap();
        assert_eq!(first.nqn, "nqn.2024-01.org.example:node-7");
        assert!(is_uuid(&first.id));
        let again = HostIdentity::load_or_create(&etc, &state).unwrap();
        assert_eq!(first, again);
    }

    #[test]
    fn bad_etc_files_are_errors() {
        let (_t, etc, state) = dirs();
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("hostnqn"), "nqn.x,ctrl_loss_tmo=-1").unwrap();
        let e = HostIdentity::load_or_create(&etc, &state).unwrap_err();
        assert!(matches!(e, NvmeError::BadIdentity { .. }), "{e}");
        fs::write(etc.join("hostnqn"), "").unwrap();
        assert!(HostIdentity::load_or_create(&etc, &state).is_err());
        fs::write(etc.join("hostnqn"), NQN).unwrap();
        fs::write(etc.join("hostid"), "not-a-uuid").unwrap();
        let e = HostIdentity::load_or_create(&etc, &state).unwrap_err();
        assert!(e.to_string().contains("hostid"), "{e}");
    }

    #[test]
    fn generated_once_then_reused() {
        let (_t, etc, state) = dirs();
        let first = HostIdentity::load_or_create(&etc, &state).unwrap();
        assert!(first.nqn.starts_with(UUID_NQN_PREFIX));
        assert_eq!(uuid_of_nqn(&first.nqn).as_deref(), Some(first.id.as_str()));
        assert_eq!(
            fs::read_to_string(state.join("hostnqn")).unwrap(),
            format!("{}\n", first.nqn)
        );
        assert_eq!(
            fs::read_to_string(state.join("hostid")).unwrap(),
            format!("{}\n", first.id)
        );
        for _ in 0..3 {
            assert_eq!(HostIdentity::load_or_create(&etc, &state).unwrap(), first);
        }
        let leftovers: Vec<_> = fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn partial_state_is_completed_consistently() {
        let (_t, etc, state) = dirs();
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join("hostid"), ID).unwrap();
        let id = HostIdentity::load_or_create(&etc, &state).unwrap();
        assert_eq!(
            id,
            HostIdentity {
                nqn: NQN.into(),
                id: ID.into()
            }
        );

        let (_t2, etc2, state2) = dirs();
        fs::create_dir_all(&state2).unwrap();
        fs::write(state2.join("hostnqn"), NQN).unwrap();
        let id = HostIdentity::load_or_create(&etc2, &state2).unwrap();
        assert_eq!(id.id, ID);
        assert_eq!(
            fs::read_to_string(state2.join("hostid")).unwrap().trim(),
            ID
        );
    }

    #[test]
    fn unwritable_state_dir_is_an_error() {
        let (t, etc, _) = dirs();
        let file = t.path().join("a-file");
        fs::write(&file, "").unwrap();
        let e = HostIdentity::load_or_create(&etc, &file.join("state")).unwrap_err();
        assert!(matches!(e, NvmeError::IdentityIo { .. }), "{e}");
    }
}
