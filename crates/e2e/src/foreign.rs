//! A foreign NVMe/TCP target: a subsystem that is not the driver's (another
//! NQN prefix, another port), made directly in nvmet's configfs and backed by
//! a loop device over a file. It stands for what a node may have connected
//! beside the driver's volumes: a root disk over NVMe-oF, another driver's
//! volume. The driver must never touch it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fabrics::{self, Connect};
use crate::rds::NVMET;
use crate::support::{Context, Outcome};

/// The foreign subsystem's NQN: no prefix of the driver's.
pub const NQN: &str = "nqn.2014-08.org.example:node-root-disk";
/// Its port (the simulator's is `rds::PORT`).
pub const PORT: u16 = 4421;
/// The nvmet port ID, chosen far from the simulator's.
const PORT_ID: u16 = 4000;

/// The foreign target, served until [`ForeignTarget::stop`].
#[derive(Debug)]
pub struct ForeignTarget {
    loop_device: String,
    image: PathBuf,
}

fn nvmet(rel: &str) -> PathBuf {
    Path::new(NVMET).join(rel)
}

fn write(path: &Path, value: &str) -> Outcome {
    fs::write(path, value).context(format!("write {value:?} to {}", path.display()))
}

impl ForeignTarget {
    /// Makes a 64 MiB target under `scratch` and serves it on 127.0.0.1:[`PORT`].
    pub fn start(scratch: &Path) -> Outcome<ForeignTarget> {
        let image = scratch.join("foreign.img");
        let file = fs::File::create(&image).context("create the foreign image")?;
        file.set_len(64 << 20).context("size the foreign image")?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)
            .output()
            .context("run losetup")?;
        if !out.status.success() {
            return Err(format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let loop_device = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let target = ForeignTarget { loop_device, image };

        let subsys = nvmet(&format!("subsystems/{NQN}"));
        fs::create_dir(&subsys).context("make the foreign subsystem")?;
        write(&subsys.join("attr_allow_any_host"), "1")?;
        let ns = subsys.join("namespaces/1");
        fs::create_dir(&ns).context("make the foreign namespace")?;
        write(&ns.join("device_path"), &target.loop_device)?;
        write(&ns.join("enable"), "1")?;
        let port = nvmet(&format!("ports/{PORT_ID}"));
        fs::create_dir(&port).context("make the foreign port")?;
        write(&port.join("addr_trtype"), "tcp")?;
        write(&port.join("addr_adrfam"), "ipv4")?;
        write(&port.join("addr_traddr"), "127.0.0.1")?;
        write(&port.join("addr_trsvcid"), &PORT.to_string())?;
        std::os::unix::fs::symlink(&subsys, port.join("subsystems").join(NQN))
            .context("link the foreign subsystem to its port")?;
        Ok(target)
    }

    /// Connects this node to it, with a host identity of its own.
    pub async fn connect(&self) -> Outcome {
        let (hostnqn, hostid) = fabrics::new_host_identity()?;
        fabrics::connect(&Connect {
            traddr: "127.0.0.1".into(),
            trsvcid: PORT,
            nqn: NQN.into(),
            hostnqn,
            hostid,
            ctrl_loss_tmo: 60,
            reconnect_delay: 1,
        })
        .await
        .map(|_| ())
    }

    /// Disconnects it and removes it from nvmet; every step is tried.
    pub async fn stop(self) -> Outcome {
        let mut first_error = fabrics::disconnect(NQN).await.err();
        let mut step = |result: std::io::Result<()>, what: &str| {
            if let Err(e) = result
                && first_error.is_none()
            {
                first_error = Some(format!("{what}: {e}"));
            }
        };
        let port = nvmet(&format!("ports/{PORT_ID}"));
        let subsys = nvmet(&format!("subsystems/{NQN}"));
        step(
            fs::remove_file(port.join("subsystems").join(NQN)),
            "unlink the foreign subsystem",
        );
        step(fs::remove_dir(&port), "remove the foreign port");
        step(
            fs::write(subsys.join("namespaces/1/enable"), "0"),
            "disable the foreign namespace",
        );
        step(
            fs::remove_dir(subsys.join("namespaces/1")),
            "remove the foreign namespace",
        );
        step(fs::remove_dir(&subsys), "remove the foreign subsystem");
        let detached = Command::new("losetup")
            .args(["-d", &self.loop_device])
            .status()
            .map(|_| ());
        step(detached, "detach the foreign loop device");
        step(fs::remove_file(&self.image), "remove the foreign image");
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
