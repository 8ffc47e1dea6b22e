//! `--emit slurm DIR`: a table as Slurm job arrays. Cells are grouped into dependency levels
//! (teachers before the students that need them); each level is one array (one cell per task)
//! submitted after the previous level succeeds. Every task skips a finished cell and resumes an
//! interrupted one, so resubmitting is safe. Results land in the same run directories, so
//! `cargo xtask reproduce <table> --aggregate-only` reads them back on a shared file system.

use std::fmt::Write as _;
use std::path::Path;

use super::manifest::Cell;
use super::report::write;

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The dependency level of every cell (0: needs nothing).
pub fn levels(cells: &[Cell]) -> Vec<usize> {
    let mut level = vec![0usize; cells.len()];
    for i in 0..cells.len() {
        level[i] = cells[i]
            .needs
            .iter()
            .map(|&n| level[n] + 1)
            .max()
            .unwrap_or(0);
    }
    level
}

/// Writes `cells-<level>.txt`, `level-<level>.sbatch` and `submit.sh` into `dir`.
pub fn emit(dir: &Path, table: &str, repo: &Path, kd: &Path, cells: &[Cell]) -> anyhow::Result<()> {
    let levels = levels(cells);
    let max = levels.iter().copied().max().unwrap_or(0);
    let mut submit = String::from(
        "#!/usr/bin/env bash\n# Submits every level of the table, each after the previous one succeeds.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n",
    );
    let mut previous: Option<String> = None;
    for level in 0..=max {
        let members: Vec<&Cell> = cells
            .iter()
            .zip(&levels)
            .filter(|(_, l)| **l == level)
            .map(|(c, _)| c)
            .collect();
        let mut lines = String::new();
        for cell in &members {
            let run_dir = repo.join(&cell.dir);
            let mut command = format!(
                "{} train {}",
                shell_quote(&kd.display().to_string()),
                shell_quote(&cell.config.display().to_string())
            );
            for set in &cell.sets {
                let _ = write!(command, " --set {}", shell_quote(set));
            }
            let _ = writeln!(
                lines,
                "if [ ! -f {dir}/summary.json ]; then if [ -f {dir}/checkpoints/last.kdc ]; then {command} --resume; else {command}; fi; fi",
                dir = shell_quote(&run_dir.display().to_string())
            );
        }
        let list = format!("cells-{level}.txt");
        write(&dir.join(&list), &lines)?;
        let sbatch = format!(
            "#!/usr/bin/env bash\n#SBATCH --job-name=kd-{table}-{level}\n#SBATCH --array=0-{last}\n#SBATCH --gres=gpu:1\n\
             #SBATCH --output=slurm-%A_%a.out\n# One cell per array task; edit resources above as your cluster needs.\n\
             set -euo pipefail\ncd {repo}\nline=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {list_path})\nbash -c \"$line\"\n",
            last = members.len().saturating_sub(1),
            repo = shell_quote(&repo.display().to_string()),
            list_path = shell_quote(&dir.join(&list).display().to_string()),
        );
        write(&dir.join(format!("level-{level}.sbatch")), &sbatch)?;
        let dependency = previous
            .as_ref()
            .map(|p| format!("--dependency=afterok:${p} "))
            .unwrap_or_default();
        let _ = writeln!(
            submit,
            "job{level}=$(sbatch --parsable {dependency}level-{level}.sbatch)"
        );
        previous = Some(format!("job{level}"));
    }
    let _ = writeln!(
        submit,
        "echo \"submitted; when done: cargo xtask reproduce {table} --aggregate-only\""
    );
    write(&dir.join("submit.sh"), &submit)?;
    Ok(())
}
