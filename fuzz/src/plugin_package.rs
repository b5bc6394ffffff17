//! The `plugin_package` fuzz target: a plugin package as `switchyard plugin
//! install` reads it from the internet, through `package::stage` (the tar.gz
//! stream into a staging folder, every entry and the manifest checked: the
//! whole of install but loading the plugin in a child process and renaming
//! the files into place).
//!
//! The first byte picks how the rest is read: `0` a raw tar stream (the
//! target gzips it), `1` a raw `.tar.gz`, anything else a package built from
//! the bytes with `arbitrary` ([`build`]): a well-formed package for this
//! platform (plugin, companion, manifest with their true sha256s and sizes),
//! then a few of the ways a package can be bad: a name with a folder, `..`,
//! a leading dot, a NUL or 300 bytes (long names go through GNU long-name
//! entries, which the tar reader resolves); a link, folder, FIFO or sparse
//! entry; a file writable by others; a name twice; a header size that lies or
//! is absurd; more files than allowed; a manifest that lies about a sha256,
//! a size, the ABI, the platform, the format or the device kind, lists a file
//! twice, a file not held, or the name it is installed under, or is not JSON.
//!
//! Invariants: nothing is written outside the staging folder; a refusal is
//! one of the errors a package can cause (never a write error, never one of
//! the later checks); for a built package, it is refused exactly when one of
//! the breakages was applied; an accepted package has a manifest of this
//! host's format, ABI and platform with one plugin, and the staging folder
//! holds exactly the files it lists, each regular, with the listed sha256
//! and size.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use sha2::{Digest, Sha256};
use switchyard::package::install::{MAX_FILES, MAX_FILE_BYTES};
use switchyard::package::manifest::{platform, FORMAT};
use switchyard::package::{stage, InstallError, Staged};
use switchyard_core::ABI_VERSION;

/// One tar entry as written: the name bytes, type flag, mode, the size the
/// header claims and the bytes that follow.
struct Entry {
    name: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    size: u64,
    data: Vec<u8>,
}

impl Entry {
    fn file(name: &str, mode: u32, data: Vec<u8>) -> Entry {
        Entry { name: name.into(), kind: tar::EntryType::Regular, mode, size: data.len() as u64, data }
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A tar stream of `entries`, names written raw (so `..` and links can be
/// made), a GNU long-name entry before any name over 100 bytes.
fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, mode: u32, size: u64, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        h.set_mode(mode);
        h.set_size(size);
        h.set_entry_type(kind);
        if kind.is_symlink() || kind.is_hard_link() {
            h.set_link_name("/etc/passwd").expect("a short link name");
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    let mut out = Vec::new();
    for e in entries {
        if e.name.len() > 100 {
            let mut long = e.name.clone();
            long.push(0);
            block(&mut out, b"././@LongLink", tar::EntryType::GNULongName, 0o644, long.len() as u64, &long);
        }
        block(&mut out, &e.name, e.kind, e.mode, e.size, &e.data);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    gz.write_all(bytes).expect("in memory");
    gz.finish().expect("in memory")
}

/// A package built from `u` and whether it was broken on purpose.
fn build(u: &mut Unstructured<'_>) -> Result<(Vec<u8>, bool)> {
    let kind = *u.choose(&["cpu", "cuda", "mps"])?;
    let plugin = format!("libbackend_{kind}.so");
    let companion = format!("libswitchyard_torch_{kind}.so");
    let plugin_bytes: Vec<u8> = u.arbitrary()?;
    let companion_bytes: Vec<u8> = u.arbitrary()?;
    let mut files = vec![
        serde_json::json!({"name": plugin, "role": "plugin", "sha256": hex_sha256(&plugin_bytes), "size": plugin_bytes.len()}),
        serde_json::json!({"name": companion, "role": "companion", "sha256": hex_sha256(&companion_bytes), "size": companion_bytes.len()}),
    ];
    let mut manifest = serde_json::json!({
        "format": FORMAT, "name": format!("backend-{kind}"), "device_kind": kind, "version": "0.1.0",
        "abi": {"major": ABI_VERSION.major, "minor": ABI_VERSION.minor}, "platform": platform(),
        "target": null, "glibc": "2.34",
        "runtimes": {"torch": "2.11.0", "torch_cuda": kind == "cuda", "onnxruntime_min": "1.22", "onnxruntime_tested": "1.31.1"},
    });
    let mut entries = vec![Entry::file(&plugin, 0o755, plugin_bytes), Entry::file(&companion, 0o755, companion_bytes)];
    let mut broken = false;
    let mut raw_manifest: Option<Vec<u8>> = None;
    for _ in 0..u.int_in_range(0..=3u8)? {
        broken = true;
        let e = u.choose_index(entries.len())?;
        match u.int_in_range(0..=20u8)? {
            0 => {
                let bad = *u.choose(&["../x.so", "a/b.so", "/etc/x.so", ".hidden.so", "a\\b.so", "..", "."])?;
                entries[e].name = bad.into();
            }
            1 => entries[e].name = vec![b'x'; 300],
            2 => {
                // The reader stops at a NUL: the entry is read as a name the manifest does not list.
                let half = entries[e].name.len() / 2;
                entries[e].name.insert(half, 0);
            }
            3 => {
                let kinds = [
                    tar::EntryType::Symlink,
                    tar::EntryType::Link,
                    tar::EntryType::Directory,
                    tar::EntryType::Fifo,
                    tar::EntryType::GNUSparse,
                    tar::EntryType::Char,
                ];
                entries[e].kind = *u.choose(&kinds)?;
            }
            4 => entries[e].mode |= 0o002,
            5 => {
                let copy = Entry::file(&String::from_utf8_lossy(&entries[e].name), 0o755, entries[e].data.clone());
                entries.push(copy);
            }
            6 => entries[e].size = MAX_FILE_BYTES + 1 + u64::from(u.arbitrary::<u16>()?),
            7 => entries[e].size = u.int_in_range(entries[e].data.len() as u64 + 1..=u64::from(u32::MAX))?,
            8 => {
                for i in 0..MAX_FILES {
                    entries.push(Entry::file(&format!("extra{i}.so"), 0o644, vec![i as u8]));
                }
            }
            9 => files[e % 2]["sha256"] = hex_sha256(b"something else").into(),
            10 => files[e % 2]["size"] = (files[e % 2]["size"].as_u64().expect("a size") + 1).into(),
            11 => manifest["abi"]["major"] = (ABI_VERSION.major + 1).into(),
            12 => manifest["abi"]["major"] = u.int_in_range(0..=ABI_VERSION.major - 1)?.into(),
            13 => manifest["platform"] = "plan9-mips".into(),
            14 => manifest["format"] = (FORMAT + 1).into(),
            15 => manifest["device_kind"] = "tpu".into(),
            16 => {
                let twice = files[e % 2].clone();
                files.push(twice);
            }
            17 => files.push(
                serde_json::json!({"name": "ghost.so", "role": "companion", "sha256": hex_sha256(b""), "size": 0}),
            ),
            18 => {
                let name = format!("{plugin}.manifest.json");
                files
                    .push(serde_json::json!({"name": name, "role": "companion", "sha256": hex_sha256(b""), "size": 0}));
                entries.push(Entry::file(&name, 0o644, Vec::new()));
            }
            19 => entries.push(Entry::file("manifest.json", 0o644, b"{}".to_vec())),
            _ => raw_manifest = Some(u.arbitrary()?),
        }
    }
    if u.ratio(1, 8)? {
        // A newer minor ABI is one this host can use.
        manifest["abi"]["minor"] = (ABI_VERSION.minor + 1).into();
    }
    if u.ratio(1, 8)? && entries.len() > 1 {
        // Any order of entries is a valid package.
        let e = u.choose_index(entries.len())?;
        entries.swap(0, e);
    }
    manifest["files"] = files.into();
    let json = raw_manifest.unwrap_or_else(|| serde_json::to_vec_pretty(&manifest).expect("JSON"));
    let at = u.choose_index(entries.len() + 1)?;
    entries.insert(at, Entry::file("manifest.json", 0o644, json));
    Ok((gzip(&tar_bytes(&entries)), broken))
}

/// A private folder per process for the staging folders (tmpfs where there is one).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        const PREFIX: &str = "switchyard-fuzz-package-";
        // A fuzzer ends by a signal or a crash, so no destructor removes its folder: each
        // run removes those of processes that are gone (where /proc tells; else none).
        if Path::new("/proc/self").exists() {
            for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let gone = name
                    .strip_prefix(PREFIX)
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists());
                if gone {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("{PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    })
}

fn check_accepted(staged: &Staged, staging: &Path) {
    let m = &staged.manifest;
    assert_eq!(m.format, FORMAT, "accepted format {}", m.format);
    assert!(ABI_VERSION.accepts(m.abi), "accepted ABI {}", m.abi);
    assert_eq!(m.platform, platform(), "accepted another platform");
    assert_eq!(m.files.iter().filter(|f| f.role == "plugin").count(), 1, "not one plugin: {m:?}");
    let mut listed: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    listed.sort();
    assert!(listed.windows(2).all(|p| p[0] != p[1]), "a name listed twice: {listed:?}");
    assert!(listed.len() <= MAX_FILES, "{} files accepted", listed.len());
    let staged_names: Vec<&str> = staged.files.keys().map(String::as_str).collect();
    assert_eq!(staged_names, listed, "staged files against the manifest");
    let mut on_disk: Vec<String> = std::fs::read_dir(staging)
        .expect("the staging folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, listed, "the staging folder holds other files than the manifest lists");
    for entry in &m.files {
        let path = staging.join(&entry.name);
        let meta = std::fs::symlink_metadata(&path).expect("a staged file");
        assert!(meta.file_type().is_file(), "`{}` is not a regular file", entry.name);
        let bytes = std::fs::read(&path).expect("a staged file");
        assert_eq!(bytes.len() as u64, entry.size, "`{}` size", entry.name);
        assert!(hex_sha256(&bytes).eq_ignore_ascii_case(&entry.sha256), "`{}` sha256", entry.name);
        assert_eq!(staged.files[&entry.name].path, path);
    }
}

/// One fuzz input; panics on a violated invariant.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (gz, broken) = match mode {
        0 => (gzip(rest), None),
        1 => (rest.to_vec(), None),
        _ => match build(&mut Unstructured::new(rest)) {
            Ok((gz, broken)) => (gz, Some(broken)),
            Err(_) => return,
        },
    };
    let root = scratch();
    let staging = root.join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).expect("a staging folder");
    let result = stage(Path::new("fuzz.tar.gz"), gz.as_slice(), &staging);
    let beside: Vec<_> =
        std::fs::read_dir(root).expect("the scratch folder").flatten().map(|e| e.file_name()).collect();
    assert_eq!(beside, ["staging"], "the package wrote beside its staging folder");
    match &result {
        Ok(staged) => {
            assert_ne!(broken, Some(true), "a broken package was accepted: {:?}", staged.manifest);
            check_accepted(staged, &staging);
        }
        Err(e) => {
            assert_ne!(broken, Some(false), "a good package was refused: {e}");
            let expected = matches!(
                e,
                InstallError::Read { .. }
                    | InstallError::BadEntry { .. }
                    | InstallError::WritableByOthers { .. }
                    | InstallError::BadManifest { .. }
                    | InstallError::Sha256 { .. }
                    | InstallError::Abi { .. }
                    | InstallError::Platform { .. }
            );
            assert!(expected, "staging gave {e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
}
