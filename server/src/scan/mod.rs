//! Library scanning: walk the configured folders, probe new or changed video files with
//! ffprobe, name them (films, series → seasons → episodes), find or extract artwork, and write
//! the result to the store; items whose files are gone are removed.
//!
//! The parts are separate so each can be tested alone: [`walk`] (filesystem, containment of
//! links), [`names`] (pure parsing), [`probe`] (ffprobe), [`images`] (artwork), [`ids`] (stable
//! item ids).

pub mod ids;
pub mod images;
pub mod names;
pub mod probe;
pub mod walk;
