//! `--released-teachers DIR`: the files a table's `[teachers.released]` names must all be in
//! `DIR` before anything plans or runs. Nothing is downloaded; a missing file is bad input (exit
//! status 2) naming every expected path and the address the official script fetches it from.

use std::path::Path;

use crate::BadInput;

use super::manifest::Manifest;

/// Checks that every released teacher file of `manifest` is in `dir`.
///
/// # Errors
/// [`BadInput`] when the table names no released teachers, or listing every file that is
/// missing (path, architecture, download address and the script that downloads it).
pub fn check(manifest: &Manifest, table: &str, dir: &Path) -> anyhow::Result<()> {
    let released = manifest
        .teachers
        .as_ref()
        .and_then(|t| t.released.as_ref())
        .ok_or_else(|| {
            BadInput(format!(
                "table `{table}` names no released teachers ([teachers.released]); \
                 --released-teachers applies to tables that do"
            ))
        })?;
    let files = manifest.released_files(dir)?;
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !f.path.is_file())
        .map(|f| format!("  {} ({}; {})", f.path.display(), f.arch, f.url))
        .collect();
    if !missing.is_empty() {
        return Err(BadInput(format!(
            "--released-teachers {}: {} of the {} released teacher file(s) of `{table}` are \
             missing:\n{}\n{} downloads them into this layout; kd downloads nothing",
            dir.display(),
            missing.len(),
            files.len(),
            missing.join("\n"),
            released.fetched_by
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::reproduce::manifest::{Cell, CellKind};
    use crate::reproduce::{build_kd, repo_root, run};

    const TABLE: &str = "repdistiller-cifar100";
    /// The six teachers RepDistiller's fetch script downloads, which the table's columns use.
    const TEACHERS: [&str; 6] = [
        "resnet56",
        "resnet110",
        "wrn_40_2",
        "resnet32x4",
        "vgg13",
        "ResNet50",
    ];

    fn table() -> Manifest {
        Manifest::load(&repo_root().join(format!("configs/reproduce/{TABLE}.toml"))).unwrap()
    }

    fn released_path(dir: &Path, arch: &str) -> PathBuf {
        dir.join(format!("{arch}_vanilla"))
            .join("ckpt_epoch_240.pth")
    }

    /// Puts `arch`'s file where RepDistiller's fetch script puts it: the zoo's PyTorch fixture
    /// (a state dict PyTorch wrote from RepDistiller's model definition).
    fn supply(dir: &Path, arch: &str) {
        let path = released_path(dir, arch);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let fixture = repo_root()
            .join("crates/kd-core/tests/fixtures/pytorch")
            .join(format!("{arch}.pth"));
        std::fs::copy(fixture, path).unwrap();
    }

    fn set_of<'c>(cell: &'c Cell, key: &str) -> Option<&'c str> {
        cell.sets
            .iter()
            .rev()
            .find_map(|s| s.strip_prefix(key)?.strip_prefix('='))
    }

    #[test]
    fn every_missing_released_teacher_is_named_with_its_address() {
        let m = table();
        let dir = tempfile::tempdir().unwrap();
        let error = check(&m, TABLE, dir.path()).unwrap_err();
        assert!(error.downcast_ref::<BadInput>().is_some(), "exit status 2");
        let text = error.to_string();
        assert!(text.contains("6 of the 6"), "{text}");
        for arch in TEACHERS {
            let path = released_path(dir.path(), arch);
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(
                text.contains(&format!(
                    "http://shape2prog.csail.mit.edu/repo/{arch}_vanilla/ckpt_epoch_240.pth"
                )),
                "{text}"
            );
        }
        assert!(text.contains("fetch_pretrained_teachers.sh"), "{text}");

        for arch in &TEACHERS[..5] {
            supply(dir.path(), arch);
        }
        let text = check(&m, TABLE, dir.path()).unwrap_err().to_string();
        assert!(text.contains("1 of the 6"), "{text}");
        assert!(
            text.contains("ResNet50_vanilla/ckpt_epoch_240.pth"),
            "{text}"
        );
        assert!(
            !text.contains("resnet56_vanilla"),
            "only the missing file: {text}"
        );

        supply(dir.path(), "ResNet50");
        check(&m, TABLE, dir.path()).unwrap();
    }

    #[test]
    fn a_table_without_released_teachers_refuses_the_flag() {
        let m = Manifest::load(&repo_root().join("configs/reproduce/sokd-cifar100.toml")).unwrap();
        let error = check(&m, "sokd-cifar100", Path::new("/nowhere")).unwrap_err();
        assert!(error.downcast_ref::<BadInput>().is_some());
        assert!(
            error.to_string().contains("names no released teachers"),
            "{error}"
        );
    }

    #[test]
    fn the_released_route_evaluates_the_files_and_distils_from_them() {
        let m = table();
        let dir = tempfile::tempdir().unwrap();
        let out = PathBuf::from("runs/reproduce").join(TABLE);
        for seeds in [1, 3] {
            let cells = m.cells_with(seeds, false, Some(dir.path())).unwrap();
            // One evaluation per released file, whatever the seeds: its top-1 has no seed.
            let teachers: Vec<&Cell> = cells.iter().filter(|c| c.row == "teacher").collect();
            assert_eq!(teachers.len(), TEACHERS.len());
            for cell in &teachers {
                // The teacher row is keyed by the teacher's architecture.
                let arch = &cell.key;
                assert_eq!(
                    cell.kind,
                    CellKind::Eval {
                        arch: arch.clone(),
                        checkpoint: released_path(dir.path(), arch),
                        format: "cifar100".into(),
                    }
                );
                assert_eq!(
                    cell.dir,
                    out.join("teacher-released").join(arch).join("seed0")
                );
            }
            let kd: Vec<&Cell> = cells.iter().filter(|c| c.row == "kd").collect();
            assert_eq!(kd.len(), 13 * seeds);
            for cell in kd {
                let column = m.column.iter().find(|c| c.name == cell.key).unwrap();
                assert_eq!(
                    set_of(cell, "networks.teacher.checkpoint"),
                    Some(released_path(dir.path(), &column.teacher).to_str().unwrap())
                );
                assert_eq!(
                    set_of(cell, "networks.teacher.trained_on"),
                    Some("cifar100")
                );
                assert!(cell.needs.is_empty(), "no teacher to train first");
                assert!(cell.dir.starts_with(out.join("kd-released")), "{cell:?}");
            }
            // The student-alone row loads no teacher: its runs are shared with the trained route.
            for cell in cells.iter().filter(|c| c.row == "student") {
                assert!(cell.dir.starts_with(out.join("student")), "{cell:?}");
                assert_eq!(set_of(cell, "networks.teacher.trained_on"), None);
            }
        }

        // Without the flag, the KD rows load the teacher row's last checkpoint and wait for it.
        let cells = m.cells(1, false).unwrap();
        let kd = cells
            .iter()
            .find(|c| c.row == "kd" && c.key == "resnet56-resnet20")
            .unwrap();
        let teacher = out.join("teacher/resnet56/seed0");
        assert_eq!(
            set_of(kd, "networks.teacher.checkpoint"),
            Some(teacher.join("checkpoints/last.kdc").to_str().unwrap())
        );
        assert_eq!(set_of(kd, "networks.teacher.trained_on"), None);
        assert_eq!(cells[kd.needs[0]].dir, teacher);
        assert_eq!(cells[kd.needs[0]].kind, CellKind::Train);
    }

    #[test]
    fn the_released_route_plans_with_the_files_it_names() {
        let repo = repo_root();
        let kd = build_kd(&repo).unwrap();
        let m = table();
        let dir = tempfile::tempdir().unwrap();
        for arch in TEACHERS {
            supply(dir.path(), arch);
        }
        check(&m, TABLE, dir.path()).unwrap();
        let cells = m.cells_with(1, false, Some(dir.path())).unwrap();
        for cell in cells.iter().filter(|c| c.row == "kd") {
            let out = run::kd_command(&kd, &repo, cell, &["plan"])
                .arg("--allow-missing-data")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}: {stdout}{}",
                cell.key,
                String::from_utf8_lossy(&out.stderr)
            );
            // The plan imports the released file (cached as `<file stem>-<arch>-<digest>.kdc`).
            let column = m.column.iter().find(|c| c.name == cell.key).unwrap();
            assert!(
                stdout.contains(&format!("ckpt_epoch_240-{}-", column.teacher)),
                "{}: {stdout}",
                cell.key
            );
        }
    }
}
