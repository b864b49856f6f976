//! README's configuration key reference cannot drift from the parser: for each kind of
//! table, the keys `tern -t` lists as expected (it names them all when it meets an unknown
//! key) must be exactly the keys of README's table for it. Also: every example file loads.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn tern() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tern"))
}

/// The keys the parser accepts in each table, from its "expected one of" messages.
fn accepted() -> Vec<BTreeSet<String>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        "root = \"www\"\nzz_unknown = 1\n[vhost.\"a.test\"]\nroot = \"www\"\nzz_unknown = 1\n\
         [route.\"/x/\"]\nstatic = \"www\"\nzz_unknown = 1\n",
    )
    .unwrap();
    let out = tern().arg("-t").arg("-c").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let sets: Vec<BTreeSet<String>> = err
        .lines()
        .filter_map(|l| l.split_once("expected one of ").map(|(_, keys)| keys))
        .map(|keys| keys.split(", ").map(str::to_string).collect())
        .collect();
    assert_eq!(sets.len(), 3, "{err}");
    sets
}

/// The keys in the first column of the key tables after README's "### Key reference".
fn documented() -> Vec<BTreeSet<String>> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("### Key reference")
        .expect("a key reference section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n## ").map_or(section.len(), |i| i + 4)];
    let mut tables: Vec<BTreeSet<String>> = Vec::new();
    let mut in_table = false;
    for line in section.lines() {
        if line.starts_with("| key |") {
            tables.push(BTreeSet::new());
            in_table = true;
        } else if in_table && line.starts_with("| `") {
            let first = line.split('|').nth(1).unwrap_or("");
            let set = tables.last_mut().unwrap();
            for key in first.split(',') {
                set.insert(key.trim().trim_matches('`').to_string());
            }
        } else if !line.starts_with('|') {
            in_table = false;
        }
    }
    tables
}

#[test]
fn readme_key_reference_matches_the_parser() {
    let (parser, readme) = (accepted(), documented());
    assert_eq!(readme.len(), 3, "three key tables in README");
    for (what, (p, r)) in ["top level", "[vhost]", "[route]"]
        .iter()
        .zip(parser.iter().zip(&readme))
    {
        let undocumented: Vec<_> = p.difference(r).collect();
        let unknown: Vec<_> = r.difference(p).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "{what}: keys the parser takes but README omits: {undocumented:?}; \
             keys README names but the parser rejects: {unknown:?}"
        );
    }
}

#[test]
fn help_names_the_config_flags() {
    let out = tern().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--config", "--check-config", "--print-config", "SIGHUP"] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
}

/// Every file in examples/ passes `tern -t`. The translations name the original servers'
/// absolute paths (`/var/www`, `/home/www/`), which need not exist on the test machine:
/// each quoted absolute path that does not exist is replaced by a directory made for the
/// test (its name kept beneath a temporary directory), so the check covers everything but
/// the existence of those paths here.
#[test]
fn every_example_passes_check_config() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut fixed = text.clone();
        for quoted in text.split('"').skip(1).step_by(2) {
            if quoted.starts_with('/') && !Path::new(quoted).exists() && !quoted.contains(' ') {
                let stand_in = tmp.path().join(quoted.trim_start_matches('/'));
                if quoted.ends_with(".log") {
                    continue; // logs are opened at start, not by -t
                }
                std::fs::create_dir_all(&stand_in).unwrap();
                fixed = fixed.replace(
                    &format!("\"{quoted}\""),
                    &format!("\"{}\"", stand_in.display()),
                );
            }
        }
        // Relative paths stay relative to the example's own directory.
        let copy = examples.join(format!(
            ".check-{}",
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&copy, &fixed).unwrap();
        let out = tern().arg("-t").arg("-c").arg(&copy).output().unwrap();
        std::fs::remove_file(&copy).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", path.display());
        assert!(err.contains("is ok"), "{}: {err}", path.display());
        checked += 1;
    }
    assert!(
        checked >= 3,
        "tern.toml, comanche.toml and pyminihttpd.toml"
    );
}
