//! Profiles as Parquet: one row per user, with the columns of `attune.profile.v1` (the same
//! names, types a data platform reads without a cast). `topics` is a list of structs, as in the
//! JSON. Written in row groups of [`ROWS_PER_GROUP`] profiles, so an export of millions of
//! users holds one group in memory, never the whole file.

use crate::{Profile, StoreError};
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray, TimestampMillisecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::io::Write;
use std::sync::Arc;

/// Profiles per row group (and per Arrow batch handed to the writer).
pub const ROWS_PER_GROUP: usize = 8192;

/// The file metadata key that names the format, as `schema` does in each row.
pub const PARQUET_SCHEMA_KEY: &str = "attune.schema";

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn topic_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        // Int64, not UInt64: Spark, BigQuery and Hive have no unsigned integers.
        Field::new("evidence", DataType::Int64, false),
        Field::new("first_seen", timestamp(), false),
        Field::new("last_seen", timestamp(), false),
        Field::new("products", DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))), false),
    ])
}

/// The Arrow schema of an exported profile (documented in the README, *Export*).
pub fn profile_arrow_schema() -> SchemaRef {
    let topic = Field::new("item", DataType::Struct(topic_fields()), false);
    Arc::new(Schema::new(vec![
        Field::new("schema", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("updated_at", timestamp(), false),
        Field::new("scored_at", timestamp(), false),
        Field::new("half_life_days", DataType::Float64, false),
        Field::new("taxonomy", DataType::Utf8, false),
        Field::new("model_set", DataType::Utf8, false),
        Field::new("topics", DataType::List(Arc::new(topic)), false),
    ]))
}

/// Writes profiles to a Parquet file: [`write`](Self::write) each, then [`finish`](Self::finish)
/// (without it the file has no footer and no reader takes it).
pub struct ParquetProfileWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    pending: Vec<Profile>,
    rows: u64,
}

impl<W: Write + Send> ParquetProfileWriter<W> {
    pub fn new(out: W) -> Result<Self, StoreError> {
        let schema = profile_arrow_schema();
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
            .set_created_by(format!("attune {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                PARQUET_SCHEMA_KEY.to_string(),
                crate::PROFILE_SCHEMA_ID.to_string(),
            )]))
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(properties)).map_err(parquet_error)?;
        Ok(ParquetProfileWriter { writer, schema, pending: Vec::new(), rows: 0 })
    }

    pub fn write(&mut self, profile: Profile) -> Result<(), StoreError> {
        self.pending.push(profile);
        if self.pending.len() >= ROWS_PER_GROUP {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Writes what is pending and the footer; returns the number of profiles written and the
    /// output.
    pub fn finish(mut self) -> Result<(u64, W), StoreError> {
        self.flush_batch()?;
        let out = self.writer.into_inner().map_err(parquet_error)?;
        Ok((self.rows, out))
    }

    fn flush_batch(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = profiles_batch(&self.schema, &self.pending)?;
        self.writer.write(&batch).map_err(parquet_error)?;
        // Ends the row group here, so memory stays at one group of profiles.
        self.writer.flush().map_err(parquet_error)?;
        self.rows += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

fn parquet_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Stopped(format!("Parquet: {e}"))
}

fn millis(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

fn utc_millis(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

/// One Arrow batch of profiles, column by column.
fn profiles_batch(schema: &SchemaRef, profiles: &[Profile]) -> Result<RecordBatch, StoreError> {
    let topics = profiles.iter().flat_map(|p| p.topics.iter());
    let products = topics.clone().flat_map(|t| t.products.iter().map(|p| p.as_str()));
    let product_item = Arc::new(Field::new("item", DataType::Utf8, false));
    let products_list = ListArray::new(
        product_item,
        OffsetBuffer::from_lengths(topics.clone().map(|t| t.products.len())),
        Arc::new(StringArray::from_iter_values(products)),
        None,
    );
    let topic_ids: Vec<String> = topics.clone().map(|t| t.id.id().to_string()).collect();
    let topic_struct = StructArray::new(
        topic_fields(),
        vec![
            Arc::new(StringArray::from_iter_values(topic_ids)),
            Arc::new(StringArray::from_iter_values(topics.clone().map(|t| t.name))),
            Arc::new(Float64Array::from_iter_values(topics.clone().map(|t| t.score))),
            Arc::new(Int64Array::from_iter_values(
                topics.clone().map(|t| i64::try_from(t.evidence).unwrap_or(i64::MAX)),
            )),
            utc_millis(topics.clone().map(|t| millis(&t.first_seen)).collect()),
            utc_millis(topics.clone().map(|t| millis(&t.last_seen)).collect()),
            Arc::new(products_list),
        ],
        None,
    );
    let DataType::List(topic_item) = schema.field_with_name("topics").map_err(parquet_error)?.data_type().clone()
    else {
        unreachable!("profile_arrow_schema's topics is a list")
    };
    let topics_list = ListArray::new(
        topic_item,
        OffsetBuffer::from_lengths(profiles.iter().map(|p| p.topics.len())),
        Arc::new(topic_struct),
        None,
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(profiles.iter().map(|p| p.schema))),
        Arc::new(StringArray::from_iter_values(profiles.iter().map(|p| p.user_id.as_str()))),
        utc_millis(profiles.iter().map(|p| millis(&p.updated_at)).collect()),
        utc_millis(profiles.iter().map(|p| millis(&p.scored_at)).collect()),
        Arc::new(Float64Array::from_iter_values(profiles.iter().map(|p| p.half_life_days))),
        Arc::new(StringArray::from_iter_values(profiles.iter().map(|p| p.taxonomy.as_str()))),
        Arc::new(StringArray::from_iter_values(profiles.iter().map(|p| p.model_set.as_str()))),
        Arc::new(topics_list),
    ];
    RecordBatch::try_new(schema.clone(), columns).map_err(parquet_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProfileTopic;
    use arrow_array::Array;
    use attune_event::Product;
    use chrono::{TimeZone, Utc};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn profile(user: &str, topics: &[(u32, f64, u64, &[Product])]) -> Profile {
        let t = |s: i64| Utc.timestamp_opt(1_766_000_000 + s, 0).unwrap();
        Profile {
            schema: crate::PROFILE_SCHEMA_ID,
            user_id: user.to_string(),
            updated_at: t(50),
            scored_at: t(100),
            half_life_days: 30.0,
            taxonomy: "IAB Audience Taxonomy 1.1".to_string(),
            model_set: "test".to_string(),
            topics: topics
                .iter()
                .map(|&(id, score, evidence, products)| {
                    let id = attune_taxonomy::Taxonomy::get().allowed(id).expect("an interest topic");
                    ProfileTopic {
                        name: id.name(),
                        id,
                        score,
                        evidence,
                        first_seen: t(1),
                        last_seen: t(2),
                        products: products.to_vec(),
                    }
                })
                .collect(),
        }
    }

    /// The rows read back with the Parquet reader equal the profiles written, topics and
    /// products in order, an empty topic list included, across row groups.
    #[test]
    fn profiles_read_back_as_written_across_row_groups() {
        let (camping, soccer) = (725, 663);
        let mut profiles = vec![
            profile("u1", &[(camping, 0.5, 3, &[Product::Assistant, Product::Glasses]), (soccer, 0.25, 1, &[])]),
            profile("u2", &[]),
        ];
        for i in 0..ROWS_PER_GROUP + 5 {
            profiles.push(profile(&format!("bulk-{i}"), &[(soccer, 0.1, i as u64, &[Product::Vibes])]));
        }
        let mut writer = ParquetProfileWriter::new(Vec::new()).unwrap();
        for p in &profiles {
            writer.write(p.clone()).unwrap();
        }
        let (rows, bytes) = writer.finish().unwrap();
        assert_eq!(rows, profiles.len() as u64);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();

        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let metadata = builder.metadata().clone();
        assert_eq!(metadata.num_row_groups(), 2, "{ROWS_PER_GROUP} profiles a group");
        let kv = metadata.file_metadata().key_value_metadata().unwrap();
        assert!(kv.iter().any(|k| k.key == PARQUET_SCHEMA_KEY && k.value.as_deref() == Some("attune.profile.v1")));
        let mut read = 0;
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            assert_eq!(batch.schema().fields(), profile_arrow_schema().fields());
            let users = batch.column_by_name("user_id").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
            let topics = batch.column_by_name("topics").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
            for row in 0..batch.num_rows() {
                let expected = &profiles[read + row];
                assert_eq!(users.value(row), expected.user_id);
                let topic_rows = topics.value(row);
                let topic_rows = topic_rows.as_any().downcast_ref::<StructArray>().unwrap();
                assert_eq!(topic_rows.len(), expected.topics.len());
                let ids = topic_rows.column_by_name("id").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
                let scores =
                    topic_rows.column_by_name("score").unwrap().as_any().downcast_ref::<Float64Array>().unwrap();
                let evidence =
                    topic_rows.column_by_name("evidence").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
                let seen = topic_rows
                    .column_by_name("first_seen")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .unwrap();
                let products =
                    topic_rows.column_by_name("products").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
                for (i, t) in expected.topics.iter().enumerate() {
                    assert_eq!(ids.value(i), t.id.id().to_string());
                    assert_eq!(scores.value(i), t.score);
                    assert_eq!(evidence.value(i), t.evidence as i64);
                    assert_eq!(seen.value(i), t.first_seen.timestamp_millis());
                    let names = products.value(i);
                    let names = names.as_any().downcast_ref::<StringArray>().unwrap();
                    let names: Vec<&str> = names.iter().map(|n| n.unwrap()).collect();
                    let want: Vec<&str> = t.products.iter().map(|p| p.as_str()).collect();
                    assert_eq!(names, want);
                }
            }
            read += batch.num_rows();
        }
        assert_eq!(read, profiles.len());
    }
}
