//! The simulator's end of the wire: the master side of a pseudo-terminal, driven
//! by tokio, and a symlink that names the slave side the way udev names a
//! modem's port.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;

/// One pty: the master the simulator reads and writes, the slave kept open.
#[derive(Debug)]
pub struct Pty {
    master: AsyncFd<File>,
    /// Held open so a client closing and reopening the port does not hang up the
    /// master (reads on a master whose slave has no opener fail with EIO).
    _slave: OwnedFd,
    /// `/dev/pts/N`.
    slave_path: PathBuf,
    /// The symlink pointing at `slave_path`, removed on drop.
    link: Option<PathBuf>,
}

impl Pty {
    /// Open a pty in raw mode and, with `link`, point that symlink at its slave
    /// (replacing an existing symlink, refusing to replace anything else).
    /// Must run inside a tokio runtime.
    pub fn open(link: Option<&Path>) -> io::Result<Pty> {
        let pair = openpty(None, None).map_err(io::Error::from)?;
        // Raw: the line discipline must neither echo nor turn \r into \n; the
        // echo a client sees is the modem's (ATE1), as on real hardware.
        let mut termios = tcgetattr(&pair.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
        let flags = fcntl(&pair.master, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&pair.master, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", pair.slave.as_raw_fd()))?;
        // SAFETY: the File owns the master fd and lives inside the AsyncFd, so
        // the fd stays open (and is not reused) for as long as it is registered.
        let master = unsafe { AsyncFd::register(File::from(pair.master)) }?;
        if let Some(link) = link {
            replace_symlink(&slave_path, link)?;
        }
        Ok(Pty {
            master,
            _slave: pair.slave,
            slave_path,
            link: link.map(Path::to_path_buf),
        })
    }

    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// Read what the client wrote; waits until there is something.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|f| f.get_ref().read(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Write some of `buf` for the client; waits until the pty takes at least a byte.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|f| f.get_ref().write(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            // Only our own link: another simulator may have taken the name since.
            if std::fs::read_link(link).ok().as_deref() == Some(self.slave_path.as_path()) {
                let _ = std::fs::remove_file(link);
            }
        }
    }
}

fn replace_symlink(target: &Path, link: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(link)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a symlink", link.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(target, link)
}
