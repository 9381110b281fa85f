//! Checkpoints: the three networks, phi and the iteration, with the identity of the run they
//! belong to, so that `--resume` refuses a checkpoint made for another run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::GanEm;
use crate::data::ImageSet;
use crate::error::{Error, Result};

/// What makes two runs the same run: a checkpoint records it and a resume must match it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The data set and task, e.g. `mnist`.
    pub dataset: String,
    /// K.
    pub clusters: usize,
    /// Labelled training images (0: unsupervised; absent in records of unsupervised runs
    /// written before semi-supervision existed).
    #[serde(default)]
    pub labels: usize,
    /// The profile's name (a built-in name or the file's path).
    pub profile: String,
    /// [`crate::config::Profile::fingerprint`] of the settings, without the iteration count
    /// (a finished run may be extended).
    pub profile_hash: String,
    pub seed: u64,
}

impl RunIdentity {
    /// One line per field that differs, `name: checkpoint's value, this run's value`.
    fn differences(&self, run: &RunIdentity) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |name: &str, saved: String, now: String| {
            if saved != now {
                out.push(format!(
                    "{name}: the checkpoint has {saved}, this run {now}"
                ));
            }
        };
        cmp("data set", self.dataset.clone(), run.dataset.clone());
        cmp("K", self.clusters.to_string(), run.clusters.to_string());
        cmp(
            "labelled images",
            self.labels.to_string(),
            run.labels.to_string(),
        );
        cmp("profile", self.profile.clone(), run.profile.clone());
        cmp(
            "profile settings (hash)",
            self.profile_hash.clone(),
            run.profile_hash.clone(),
        );
        cmp("seed", self.seed.to_string(), run.seed.to_string());
        out
    }
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    identity: RunIdentity,
    iteration: usize,
    phi: Vec<f64>,
    /// E-net updates the averaged E-net has followed (`em.enet_average`).
    #[serde(default, skip_serializing_if = "crate::config::is_zero")]
    enet_average_updates: usize,
    /// E-net snapshots kept for `em.score_snapshots`, saved oldest first.
    #[serde(default, skip_serializing_if = "crate::config::is_zero")]
    snapshots_kept: usize,
}

const NETS: [&str; 3] = ["generator", "discriminator", "enet"];
const AVERAGED_ENET: &str = "enet_average.safetensors";

fn snapshot_file(i: usize) -> String {
    format!("enet_snapshot_{i}.safetensors")
}

impl GanEm {
    /// Saves G, D, the E-net (with running statistics), phi and the iteration into `dir`.
    /// The state file is written last and renamed into place, so a checkpoint cut off while
    /// saving still reads as the one before.
    pub fn save(&self, dir: &Path, identity: &RunIdentity) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (name, params) in NETS.iter().zip(self.params()) {
            params.save(&dir.join(format!("{name}.safetensors")))?;
        }
        if let Some(average) = &self.averaged_enet {
            average.net.params.save(&dir.join(AVERAGED_ENET))?;
        }
        let kept = self.snapshots.as_ref().map_or(0, |s| s.kept.len());
        if let Some(snapshots) = &self.snapshots {
            for (i, net) in snapshots.kept.iter().enumerate() {
                net.params.save(&dir.join(snapshot_file(i)))?;
            }
        }
        let state = CheckpointState {
            identity: identity.clone(),
            iteration: self.iteration,
            phi: self.phi.clone(),
            enet_average_updates: self.averaged_enet.as_ref().map_or(0, |a| a.updates),
            snapshots_kept: kept,
        };
        let path = dir.join("state.json");
        let partial = dir.join("state.json.partial");
        let json =
            serde_json::to_string_pretty(&state).map_err(|e| Error::Invalid(e.to_string()))?;
        std::fs::write(&partial, json).map_err(|e| Error::io(&partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))
    }

    /// The EM iteration at which this very run was last saved in `dir`, if it was.
    pub fn saved_iteration(dir: &Path, identity: &RunIdentity) -> Option<usize> {
        read_state(dir, identity).ok().map(|state| state.iteration)
    }

    /// Restores a run saved by [`GanEm::save`]; `train` re-derives w = E(x_real).
    pub fn resume(&mut self, dir: &Path, identity: &RunIdentity, train: &ImageSet) -> Result<()> {
        let state = read_state(dir, identity)?;
        for (name, params) in NETS.iter().zip(self.params_mut()) {
            params.load(&dir.join(format!("{name}.safetensors")))?;
        }
        if let Some(average) = &mut self.averaged_enet {
            average.net.params.load(&dir.join(AVERAGED_ENET))?;
            average.updates = state.enet_average_updates;
        }
        if let Some(snapshots) = &mut self.snapshots {
            if state.snapshots_kept > snapshots.capacity() {
                return Err(Error::bad_file(
                    dir.join("state.json"),
                    format!(
                        "the checkpoint keeps {} E-net snapshots, this run at most {}",
                        state.snapshots_kept,
                        snapshots.capacity()
                    ),
                ));
            }
            snapshots.clear();
            for i in 0..state.snapshots_kept {
                let mut net = snapshots.take_network();
                net.params.load(&dir.join(snapshot_file(i)))?;
                snapshots.kept.push_back(net);
            }
        }
        self.phi = state.phi;
        self.iteration = state.iteration;
        self.optimizers = None;
        if self.iteration > 0 {
            self.soft_assignments = self.assign(&train.images)?;
        }
        Ok(())
    }
}

fn read_state(dir: &Path, identity: &RunIdentity) -> Result<CheckpointState> {
    let path = dir.join("state.json");
    if !path.is_file() {
        return Err(Error::Invalid(format!(
            "no checkpoint in {} to resume: start the run without --resume",
            dir.display()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| {
        Error::bad_file(
            &path,
            format!("not a checkpoint of this version ({e}); start afresh without --resume"),
        )
    })?;
    let differences = state.identity.differences(identity);
    if !differences.is_empty() {
        return Err(Error::bad_file(
            &path,
            format!(
                "the checkpoint belongs to another run: {}",
                differences.join("; ")
            ),
        ));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_field_that_differs() {
        let a = RunIdentity {
            dataset: "mnist".into(),
            clusters: 10,
            labels: 0,
            profile: "fast".into(),
            profile_hash: "abc".into(),
            seed: 1,
        };
        assert!(a.differences(&a).is_empty());
        let b = RunIdentity {
            clusters: 20,
            seed: 2,
            ..a.clone()
        };
        let d = a.differences(&b).join("; ");
        assert!(d.contains("K: the checkpoint has 10, this run 20"), "{d}");
        assert!(d.contains("seed: the checkpoint has 1, this run 2"), "{d}");
        assert!(!d.contains("profile"), "{d}");
    }
}
