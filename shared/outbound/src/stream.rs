//! DynamoDB Stream records as JSON: the `Records` of the event Lambda hands a function, and the
//! `Records` the Streams API's `GetRecords` answers (the same shape, less `eventSource`), so the
//! local poller (`devstack`) can pass what it reads straight to the function.

use std::collections::BTreeMap;

use serde_json::Value;

/// A record's item image, attribute name to its DynamoDB JSON value (`{"S": "..."}`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Image(pub BTreeMap<String, Value>);

impl Image {
    pub fn from_json(v: &Value) -> Option<Image> {
        v.as_object()
            .map(|m| Image(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
    }

    /// A string attribute (`S`).
    pub fn s(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.get("S")?.as_str()
    }

    /// A boolean attribute (`BOOL`); absent is false.
    pub fn is_true(&self, name: &str) -> bool {
        self.0
            .get(name)
            .and_then(|v| v.get("BOOL"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// A number attribute (`N`) as an integer.
    pub fn n(&self, name: &str) -> Option<i64> {
        self.0.get(name)?.get("N")?.as_str()?.parse().ok()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Insert,
    Modify,
    Remove,
}

/// One change of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// The record's sequence number: the partial batch response names a failed record by it.
    pub sequence_number: String,
    pub change: Change,
    pub keys: Image,
    pub new_image: Option<Image>,
    pub old_image: Option<Image>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError(pub &'static str);

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a DynamoDB stream record: {}", self.0)
    }
}

impl std::error::Error for RecordError {}

impl StreamRecord {
    pub fn from_json(v: &Value) -> Result<StreamRecord, RecordError> {
        let change = match v["eventName"].as_str() {
            Some("INSERT") => Change::Insert,
            Some("MODIFY") => Change::Modify,
            Some("REMOVE") => Change::Remove,
            _ => return Err(RecordError("eventName")),
        };
        let d = &v["dynamodb"];
        let sequence_number = d["SequenceNumber"]
            .as_str()
            .ok_or(RecordError("dynamodb.SequenceNumber"))?
            .to_string();
        let keys = Image::from_json(&d["Keys"]).ok_or(RecordError("dynamodb.Keys"))?;
        Ok(StreamRecord {
            sequence_number,
            change,
            keys,
            new_image: Image::from_json(&d["NewImage"]),
            old_image: Image::from_json(&d["OldImage"]),
        })
    }

    pub fn pk(&self) -> Option<&str> {
        self.keys.s("pk")
    }

    pub fn sk(&self) -> Option<&str> {
        self.keys.s("sk")
    }
}

/// A Lambda stream event's records, each parsed or its error (one bad record fails alone).
pub fn records(event: &Value) -> Vec<(Option<String>, Result<StreamRecord, RecordError>)> {
    event["Records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let seq = r["dynamodb"]["SequenceNumber"].as_str().map(String::from);
                    (seq, StreamRecord::from_json(r))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_lambda_stream_record() {
        let r = StreamRecord::from_json(&json!({
            "eventID": "1", "eventName": "MODIFY", "eventSource": "aws:dynamodb",
            "dynamodb": {
                "Keys": {"pk": {"S": "TENANT#t1#LEAD#ld-1"}, "sk": {"S": "LEAD"}},
                "NewImage": {"stage": {"S": "won"}, "restricted": {"BOOL": true}, "version": {"N": "3"}},
                "OldImage": {"stage": {"S": "new"}},
                "SequenceNumber": "42", "StreamViewType": "NEW_AND_OLD_IMAGES"
            }
        }))
        .unwrap();
        assert_eq!(r.change, Change::Modify);
        assert_eq!(r.sequence_number, "42");
        assert_eq!(r.pk(), Some("TENANT#t1#LEAD#ld-1"));
        let new = r.new_image.unwrap();
        assert_eq!(new.s("stage"), Some("won"));
        assert!(new.is_true("restricted"));
        assert_eq!(new.n("version"), Some(3));
        assert_eq!(r.old_image.unwrap().s("stage"), Some("new"));
    }

    #[test]
    fn a_record_without_its_name_or_sequence_is_refused_alone() {
        let event = json!({"Records": [
            {"eventName": "DROP", "dynamodb": {"SequenceNumber": "1", "Keys": {}}},
            {"eventName": "INSERT", "dynamodb": {"Keys": {}}},
            {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "3", "Keys": {"pk": {"S": "x"}}}}
        ]});
        let rs = records(&event);
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[0].1, Err(RecordError("eventName")));
        assert_eq!(rs[1].1, Err(RecordError("dynamodb.SequenceNumber")));
        assert!(rs[2].1.is_ok());
        assert!(records(&json!({})).is_empty());
    }
}
