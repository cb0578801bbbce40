//! The tenant's pipeline: its ordered stages.

use serde::{Deserialize, Serialize};

use shared_core::error::{AppError, FieldErrors};

/// A pipeline stage: a stable id (stored on leads) and the name the team sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub id: String,
    pub name: String,
}

/// A tenant's pipeline: its ordered stages. New leads land in the first, which is always `new`
/// (lead intake writes it without reading the pipeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    stages: Vec<Stage>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

impl Pipeline {
    pub const MAX_STAGES: usize = 20;
    pub const MAX_ID_LEN: usize = 40;
    pub const MAX_NAME_CHARS: usize = 60;

    /// new, contacted, qualified, won, lost.
    pub fn default_stages() -> Self {
        let stages = ["new", "contacted", "qualified", "won", "lost"]
            .into_iter()
            .map(|id| Stage {
                id: id.into(),
                name: default_name(id),
            })
            .collect();
        Self { stages }
    }

    /// Stages as stored (trusted: they were validated when written).
    pub fn from_stored(stages: Vec<Stage>) -> Self {
        Self { stages }
    }

    pub fn parse(input: Vec<StageInput>) -> Result<Self, AppError> {
        let mut errors = FieldErrors::new();
        if input.is_empty() || input.len() > Self::MAX_STAGES {
            errors.insert("stages".into(), "must hold 1 to 20 stages".into());
        }
        let mut stages: Vec<Stage> = Vec::with_capacity(input.len());
        for (i, s) in input.into_iter().enumerate() {
            let id = s.id.trim().to_string();
            let id_ok = !id.is_empty()
                && id.len() <= Self::MAX_ID_LEN
                && id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !id_ok {
                errors.insert(
                    format!("stages[{i}].id"),
                    "must be 1 to 40 characters of a-z, 0-9, '-' or '_'".into(),
                );
                continue;
            }
            if stages.iter().any(|x| x.id == id) {
                errors.insert(format!("stages[{i}].id"), "is listed twice".into());
                continue;
            }
            let name = match s.name.as_deref().map(str::trim) {
                None | Some("") => default_name(&id),
                Some(n)
                    if n.chars().count() > Self::MAX_NAME_CHARS
                        || n.chars().any(char::is_control) =>
                {
                    errors.insert(
                        format!("stages[{i}].name"),
                        "must be at most 60 characters, without control characters".into(),
                    );
                    continue;
                }
                Some(n) => n.to_string(),
            };
            stages.push(Stage { id, name });
        }
        if errors.is_empty()
            && stages.first().map(|s| s.id.as_str()) != Some(shared_core::keys::FIRST_STAGE)
        {
            errors.insert(
                "stages[0].id".into(),
                "must be \"new\": new leads land in the first stage".into(),
            );
        }
        if errors.is_empty() {
            Ok(Self { stages })
        } else {
            Err(AppError::invalid_fields(errors))
        }
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    pub fn contains(&self, id: &str) -> bool {
        self.stages.iter().any(|s| s.id == id)
    }
}

fn default_name(id: &str) -> String {
    let spaced = id.replace(['_', '-'], " ");
    let mut c = spaced.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(id: &str) -> StageInput {
        StageInput {
            id: id.into(),
            name: None,
        }
    }

    #[test]
    fn default_pipeline_starts_with_new() {
        let p = Pipeline::default_stages();
        let ids: Vec<_> = p.stages().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["new", "contacted", "qualified", "won", "lost"]);
        assert_eq!(p.stages()[0].name, "New");
    }

    #[test]
    fn pipeline_rules() {
        assert!(Pipeline::parse(vec![stage("new"), stage("demo_booked")]).is_ok());
        for bad in [
            vec![],
            vec![stage("contacted"), stage("new")],
            vec![stage("new"), stage("new")],
            vec![stage("new"), stage("Won")],
            vec![stage("new"), stage("a#b")],
            (0..21)
                .map(|i| stage(if i == 0 { "new" } else { "s" }))
                .collect(),
        ] {
            let err = Pipeline::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_fields");
        }
        let named = Pipeline::parse(vec![StageInput {
            id: "new".into(),
            name: Some("Fresh".into()),
        }])
        .unwrap();
        assert_eq!(named.stages()[0].name, "Fresh");
        assert_eq!(default_name("demo_booked"), "Demo booked");
    }
}
