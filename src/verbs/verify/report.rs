//! The verification report (`--json`, and the history's `verify-failed` entry), and
//! what libcryptsetup's verdict means in it: which block failed, in which area.
#![cfg_attr(not(feature = "cryptsetup"), allow(dead_code))]

use crate::probe::verity::{self, OffsetSource};
use crate::types::Slot;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Verified,
    Corrupted,
    WrongHash,
    NoHashTree,
}

/// The verification report (`--json`), also stored in the history with `verify-failed`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub result: Outcome,
    pub label: Option<String>,
    pub partition: Option<u32>,
    pub partuuid: Option<String>,
    /// What was read (a partition device, a partition image, or the copy of the slot).
    pub device: String,
    pub root_hash: String,
    /// `--root-hash` or the kernel image it was read from.
    pub root_hash_from: String,
    pub hash_offset: Option<u64>,
    pub hash_offset_from: Option<OffsetSource>,
    pub hash_algorithm: Option<String>,
    pub data_blocks: Option<u64>,
    pub data_block_size: Option<u32>,
    /// Byte position in the partition of the first block that failed.
    pub failed_at: Option<u64>,
    /// `data` or `hash-tree`.
    pub area: Option<&'static str>,
    /// That block's number: data block N, or hash-tree block N counted from the superblock (0).
    pub block: Option<u64>,
    pub message: String,
    /// libcryptsetup's own messages.
    pub libcryptsetup: Vec<String>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

impl Report {
    pub(super) fn new(
        slot: Option<&Slot>,
        device: &str,
        root_hash: String,
        root_hash_from: String,
    ) -> Report {
        Report {
            result: Outcome::NoHashTree,
            label: slot.map(|s| s.label.clone()),
            partition: slot.map(|s| s.partition),
            partuuid: slot.map(|s| s.partuuid.clone()),
            device: device.to_string(),
            root_hash,
            root_hash_from,
            hash_offset: None,
            hash_offset_from: None,
            hash_algorithm: None,
            data_blocks: None,
            data_block_size: None,
            failed_at: None,
            area: None,
            block: None,
            message: String::new(),
            libcryptsetup: Vec::new(),
            seconds: 0.0,
            actions: Vec::new(),
        }
    }

    /// Fill in what libcryptsetup's verdict means for `what`: which block failed, in
    /// which area, with the hash tree at `offset`.
    #[cfg(feature = "cryptsetup")]
    pub(super) fn judge(
        &mut self,
        what: &str,
        verdict: crate::probe::cryptsetup::Verdict,
        offset: u64,
        sb: Option<&verity::Superblock>,
    ) {
        use crate::probe::cryptsetup::Verdict;
        match verdict {
            Verdict::Verified => {
                self.result = Outcome::Verified;
                self.message = format!(
                    "{what}: verified: {} data blocks and the hash tree at byte {offset} match root hash {}",
                    self.data_blocks.map_or_else(|| "all".into(), |n| n.to_string()),
                    self.root_hash
                );
            }
            Verdict::Corrupted { position } => {
                self.result = Outcome::Corrupted;
                self.failed_at = Some(position);
                let dbs = sb.map_or(4096, |s| u64::from(s.data_block_size));
                let hbs = sb.map_or(4096, |s| u64::from(s.hash_block_size));
                if position < offset {
                    self.area = Some("data");
                    self.block = Some(position / dbs);
                    self.message = format!(
                        "{what}: corrupted: data block {} (byte {position}) does not match its hash in the tree",
                        position / dbs
                    );
                } else {
                    self.area = Some("hash-tree");
                    self.block = Some((position - offset) / hbs);
                    self.message = format!(
                        "{what}: corrupted: hash-tree block {} (byte {position}) does not match its hash in the level above",
                        (position - offset) / hbs
                    );
                }
            }
            Verdict::WrongHash => {
                self.result = Outcome::WrongHash;
                self.message = format!(
                    "{what}: wrong root hash: every block matches the hash tree, but the tree does not match {} from {} (a different image, or a damaged top hash block)",
                    self.root_hash, self.root_hash_from
                );
            }
            Verdict::NoHashTree => {
                self.message = format!(
                    "{what}: no hash tree: libcryptsetup found no verity superblock at byte {offset}"
                );
            }
        }
    }
}
