//! `data::download` against a local HTTP server serving the Debian package's Fashion-MNIST
//! files (`apt-get install dataset-fashion-mnist`): a clean download, a server that corrupts
//! a byte, one that stops mid-file (then a resume with a range request), and a file already
//! on disk that is not the published one.
//!
//! Debian recompressed the files, so they are not byte for byte the canonical ones: the
//! source given to `download` carries their SHA-256 digests, from `sha256sum` on
//! /usr/share/datasets/fashion-mnist.

#![cfg(feature = "download")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bn_train::data::{
    DEBIAN_DIR, DownloadError, RemoteFile, Source, TrainTest, download, part_path,
};

/// `sha256sum /usr/share/datasets/fashion-mnist/*.gz` (Debian's dataset-fashion-mnist).
const DEBIAN_FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
];

/// How the test server misbehaves.
#[derive(Clone, Copy)]
enum Mode {
    Faithful,
    /// Flips one byte in the middle of every file.
    Corrupting,
    /// Sends the headers of the whole file, then only its first bytes, and hangs up.
    HangingUpAfter(usize),
}

/// `(path, range start)` of every request a test server received, in order.
type RequestLog = Arc<Mutex<Vec<(String, Option<usize>)>>>;

/// A server on a free local port; returns its base URL and its request log.
fn serve(mode: Mode) -> (String, RequestLog) {
    let files: HashMap<String, Vec<u8>> = DEBIAN_FILES
        .iter()
        .map(|(name, _)| {
            let bytes = std::fs::read(Path::new(DEBIAN_DIR).join(name))
                .expect("Fashion-MNIST (apt-get install dataset-fashion-mnist)");
            (format!("/{name}"), bytes)
        })
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let requests = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some(value) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = value.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            requests.lock().unwrap().push((path.clone(), range));
            let Some(file) = files.get(&path) else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                continue;
            };
            let start = range.unwrap_or(0);
            let mut body = file[start..].to_vec();
            let status = match range {
                Some(_) => format!(
                    "206 Partial Content\r\nContent-Range: bytes {start}-{}/{}",
                    file.len() - 1,
                    file.len()
                ),
                None => "200 OK".to_string(),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            match mode {
                Mode::Faithful => {}
                Mode::Corrupting => {
                    let middle = body.len() / 2;
                    body[middle] ^= 0x20;
                }
                Mode::HangingUpAfter(bytes) => body.truncate(bytes),
            }
            let _ = stream.write_all(&body);
        }
    });
    (url, log)
}

fn source(base_url: &str) -> Source {
    Source {
        base_url: base_url.to_string(),
        files: DEBIAN_FILES
            .iter()
            .map(|(name, sha256)| RemoteFile {
                name: name.to_string(),
                sha256: sha256.to_string(),
            })
            .collect(),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-download-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn assert_same_as_debian(dir: &Path) {
    for (name, _) in DEBIAN_FILES {
        let got = std::fs::read(dir.join(name)).unwrap();
        let want = std::fs::read(Path::new(DEBIAN_DIR).join(name)).unwrap();
        assert!(got == want, "{name} differs from the served file");
        assert!(
            !part_path(&dir.join(name)).exists(),
            "{name}.part left behind"
        );
    }
}

#[test]
fn a_clean_download_gives_the_served_files_and_a_second_one_fetches_nothing() {
    let (url, log) = serve(Mode::Faithful);
    let dir = temp_dir("clean");
    let paths = download(&dir, &source(&url)).unwrap();
    assert_eq!(paths.len(), 4);
    assert_same_as_debian(&dir);
    let data = TrainTest::load(&dir).unwrap();
    use burn::data::dataset::Dataset;
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    assert_eq!(log.lock().unwrap().len(), 4);

    // Everything is there and checks out: no request at all.
    download(&dir, &source(&url)).unwrap();
    assert_eq!(log.lock().unwrap().len(), 4);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn corrupted_bytes_are_caught_by_the_checksum_and_nothing_is_kept() {
    let (url, _) = serve(Mode::Corrupting);
    let dir = temp_dir("corrupt");
    let err = download(&dir, &source(&url)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DownloadError::Checksum { .. }), "{message}");
    assert!(message.contains("train-images-idx3-ubyte.gz"), "{message}");
    assert!(message.contains(DEBIAN_FILES[0].1), "{message}");
    let path = dir.join(DEBIAN_FILES[0].0);
    assert!(!path.exists() && !part_path(&path).exists());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_server_that_hangs_up_mid_file_leaves_a_part_that_the_next_download_resumes() {
    const SENT: usize = 1_000_000;
    let (url, _) = serve(Mode::HangingUpAfter(SENT));
    let dir = temp_dir("resume");
    let err = download(&dir, &source(&url)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DownloadError::Http { .. }), "{message}");
    assert!(
        message.contains("train-images-idx3-ubyte.gz")
            && message.contains(&format!("after {SENT} bytes")),
        "{message}"
    );
    let part = part_path(&dir.join(DEBIAN_FILES[0].0));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), SENT as u64);

    let (url, log) = serve(Mode::Faithful);
    download(&dir, &source(&url)).unwrap();
    assert_same_as_debian(&dir);
    let first = log.lock().unwrap()[0].clone();
    assert_eq!(first, (format!("/{}", DEBIAN_FILES[0].0), Some(SENT)));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_file_on_disk_that_is_not_the_published_one_is_refused_by_name() {
    let (url, log) = serve(Mode::Faithful);
    let dir = temp_dir("mismatch");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(DEBIAN_FILES[1].0);
    std::fs::write(&path, b"not the labels").unwrap();
    let message = download(&dir, &source(&url)).unwrap_err().to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("not the published"),
        "{message}"
    );
    // The first file was fetched before the second was found wanting.
    assert_eq!(log.lock().unwrap().len(), 1);
    std::fs::remove_dir_all(dir).ok();
}
