//! What the exporter made in configfs, saved beside the simulator's state
//! (`<root>/.rds-sim/nvmet.json`).
//!
//! configfs is shared by everything in the kernel: other simulators, other
//! tests, a real target. A restarted simulator may only adopt or remove
//! subsystems, ports and host objects that this record says it made; anything else is
//! foreign and left alone. Entries are written before the configfs change
//! they describe and dropped after it is undone, so a crash leaves at worst
//! an entry for something that is not there, which the next start forgets.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name under the state folder.
pub const FILE: &str = "nvmet.json";

/// A subsystem the exporter made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Made {
    /// The block device under its namespace (`/dev/loop3`), empty until
    /// attached.
    pub device: String,
    /// The image file on the host.
    pub image: PathBuf,
}

/// Everything the exporter made and has not removed yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Subsystems by NQN.
    pub subsystems: BTreeMap<String, Made>,
    /// Port ids (the directory names under `ports/`).
    pub ports: BTreeSet<u16>,
    /// Host objects (the directory names under `hosts/`); absent in records
    /// written before the simulator let in only some hosts.
    #[serde(default)]
    pub hosts: BTreeSet<String>,
}

impl Record {
    /// Loads the record of the simulator whose state folder is `dir`; an
    /// empty one when there is none.
    pub fn load(dir: &Path) -> io::Result<Record> {
        match fs::read_to_string(dir.join(FILE)) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(e),
        }
    }

    /// Saves the record atomically (temporary file, then rename).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&json)?;
        drop(file);
        fs::rename(&tmp, dir.join(FILE))
    }
}
