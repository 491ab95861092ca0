use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::time::{Duration, Instant};

use super::*;

/// An empty directory of this process's own under the temporary directory (the other
/// modules' file tests use it too).
pub(crate) fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sundial-safefile-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Makes a FIFO at `path` with mkfifo(1), so the tests call no C function themselves.
pub(crate) fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn writing_over_a_planted_symbolic_link_leaves_its_target_alone() {
    let d = scratch("link");
    let victim = d.join("victim");
    fs::write(&victim, "root's secret\n").expect("victim");
    fs::set_permissions(&victim, Permissions::from_mode(0o600)).expect("mode");
    let target = d.join("ntpd.pid");
    symlink(&victim, &target).expect("plant");
    // The old predictable temporary names, planted too.
    symlink(&victim, d.join("ntpd.tmp")).expect("plant");
    symlink(&victim, d.join(".ntpd.pid.tmp")).expect("plant");

    write_atomic(&target, b"1234\n", Ownership::PUBLIC).expect("write");
    assert_eq!(
        fs::read_to_string(&victim).expect("victim"),
        "root's secret\n"
    );
    let meta = fs::symlink_metadata(&target).expect("target");
    assert!(meta.is_file(), "the link itself was replaced");
    assert_eq!(meta.mode() & 0o7777, 0o644);
    assert_eq!(fs::read_to_string(&target).expect("pid"), "1234\n");
    // Nothing but the planted names and the result is left.
    assert_eq!(fs::read_dir(&d).expect("dir").count(), 4);

    remove(&target).expect("remove");
    assert!(!target.exists());
    assert_eq!(
        fs::read_to_string(&victim).expect("victim"),
        "root's secret\n"
    );
    remove(&target).expect("removing what is gone is fine");
    fs::remove_dir_all(&d).expect("cleanup");
}

#[test]
fn the_mode_is_exact_whatever_the_umask() {
    let d = scratch("mode");
    let p = d.join("state");
    let owned = Ownership {
        mode: 0o600,
        owner: Some((0, 0)),
    };
    write_atomic(&p, b"x", owned).expect("write");
    assert_eq!(fs::metadata(&p).expect("meta").mode() & 0o7777, 0o600);
    fs::remove_dir_all(&d).expect("cleanup");
}

#[test]
fn state_reads_refuse_links_fifos_and_devices_without_blocking() {
    let d = scratch("read");
    let good = d.join("ntp.drift");
    fs::write(&good, "1.500\n").expect("drift");
    assert_eq!(read_state(&good, 64).expect("read"), b"1.500\n");

    let link = d.join("zero");
    symlink("/dev/zero", &link).expect("plant");
    assert!(matches!(
        read_state(&link, 64),
        Err(ReadError::SymbolicLink(_))
    ));

    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let started = Instant::now();
    assert!(matches!(
        read_state(&fifo, 64),
        Err(ReadError::NotRegular(_))
    ));
    assert!(matches!(
        read_config(&fifo, 64),
        Err(ReadError::NotRegular(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5), "did not wait");
    // A device named directly (root's own config may do that): read only up to the limit.
    assert!(matches!(
        read_config(Path::new("/dev/zero"), 64),
        Err(ReadError::TooLarge(..))
    ));
    assert!(
        read_config(Path::new("/dev/null"), 64)
            .expect("empty")
            .is_empty()
    );
    assert!(matches!(
        read_state(&d.join("absent"), 64),
        Err(ReadError::Missing(_))
    ));
    fs::remove_dir_all(&d).expect("cleanup");
}

#[test]
fn reads_stop_at_the_size_limit() {
    let d = scratch("cap");
    let big = d.join("big");
    fs::write(&big, vec![b'1'; 100]).expect("big");
    assert!(matches!(read_state(&big, 99), Err(ReadError::TooLarge(..))));
    assert!(matches!(
        read_config(&big, 99),
        Err(ReadError::TooLarge(..))
    ));
    assert_eq!(read_state(&big, 100).expect("fits").len(), 100);
    fs::remove_dir_all(&d).expect("cleanup");
}

#[test]
fn appending_refuses_links_and_fifos() {
    let d = scratch("append");
    let victim = d.join("victim");
    fs::write(&victim, "keep\n").expect("victim");
    symlink(&victim, d.join("ntp.log")).expect("plant");
    assert!(open_append(&d.join("ntp.log"), 0o644).is_err());
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "keep\n");
    mkfifo(&d.join("fifo"));
    assert!(open_append(&d.join("fifo"), 0o644).is_err());
    let mut log = open_append(&d.join("real.log"), 0o644).expect("log");
    log.write_all(b"line\n").expect("write");
    fs::remove_dir_all(&d).expect("cleanup");
}
