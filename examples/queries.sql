-- DuckDB queries over sbdn's output. Run from the folder that holds `out/`:
--   duckdb -c ".read examples/queries.sql"     or paste one query into `duckdb`.
-- Each run has its own run_id=... folder; `out/results/*/*.parquet` reads every run, and the
-- run_id column is inside the files too (no hive_partitioning needed). union_by_name reads
-- runs written by older releases, which lack newer columns (they read as NULL).
-- For gs:// or s3://: INSTALL httpfs; LOAD httpfs; and use 'gs://BUCKET/sbdn/results/*/*.parquet'.

-- 1. Runs: counts and blur rate per run (blur rate = blurry / classified).
SELECT run_id,
       min(processed_at)                                   AS started,
       count(*)                                            AS classified,
       count(*) FILTER (WHERE is_blurry)                   AS blurry,
       round(100.0 * count(*) FILTER (WHERE is_blurry) / count(*), 1) AS blur_rate_pct,
       (SELECT count(*) FROM read_parquet('out/errors/*/*.parquet', union_by_name = true) e
         WHERE e.run_id = r.run_id)                        AS errors
FROM read_parquet('out/results/*/*.parquet', union_by_name = true) r
GROUP BY run_id
ORDER BY started;

-- 2. The collection as it is now: each image's latest result over all runs.
CREATE OR REPLACE TEMP VIEW latest AS
SELECT *
FROM read_parquet('out/results/*/*.parquet', union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY image_uri ORDER BY processed_at DESC) = 1;

-- 3. The 20 most blurry images, with where the blur is.
SELECT image_uri, round(blur_probability, 3) AS p_blur,
       round(100 * blur_area_fraction) AS blurred_pct, blur_region_count, overlay_uri
FROM latest
WHERE is_blurry
ORDER BY blur_probability DESC, blur_area_fraction DESC
LIMIT 20;

-- 4. Mostly blurred images (at least 80% of the frame): candidates for deletion.
SELECT image_uri, round(100 * blur_area_fraction) AS blurred_pct, width, height
FROM latest
WHERE is_blurry AND blur_area_fraction >= 0.8
ORDER BY blur_area_fraction DESC;

-- 5. Partly blurred images (one region, under 30% of the frame): maybe intended bokeh.
SELECT image_uri, round(100 * blur_area_fraction) AS blurred_pct, blur_regions[1] AS region
FROM latest
WHERE is_blurry AND blur_region_count = 1 AND blur_area_fraction < 0.3
ORDER BY blur_probability DESC;

-- 6. Blur rate per folder (the URI up to its last '/').
SELECT regexp_replace(image_uri, '/[^/]*$', '') AS folder,
       count(*) AS images,
       round(100.0 * avg(is_blurry::INT), 1) AS blur_rate_pct
FROM latest
GROUP BY folder
ORDER BY blur_rate_pct DESC, images DESC;

-- 7. Distribution of blur probability in tenths (a text histogram).
SELECT floor(blur_probability * 10) / 10 AS bucket, count(*) AS images,
       repeat('#', (50 * count(*) / max(count(*)) OVER ())::INT) AS bar
FROM latest
GROUP BY bucket
ORDER BY bucket;

-- 8. Every blurred region as a row, in original pixels (largest first).
SELECT image_uri, region.x_min, region.y_min, region.x_max, region.y_max,
       round(100 * region.area_fraction, 1) AS area_pct,
       round(region.mean_confidence, 2)     AS confidence
FROM (SELECT image_uri, unnest(blur_regions) AS region FROM latest WHERE is_blurry)
ORDER BY region.area_fraction DESC
LIMIT 50;

-- 9. Errors grouped by reason, with one example each.
SELECT error_type, stage, count(*) AS images,
       any_value(image_uri) AS example_uri, any_value(error_message) AS example_message
FROM read_parquet('out/errors/*/*.parquet', union_by_name = true)
GROUP BY error_type, stage
ORDER BY images DESC;

-- 10. The same photo stored at several URIs (identical bytes).
SELECT image_sha256, count(*) AS copies, list(image_uri ORDER BY image_uri) AS uris
FROM latest
GROUP BY image_sha256
HAVING count(*) > 1
ORDER BY copies DESC;

-- 11. Images whose verdict changed between runs (new model or threshold, or edited file).
SELECT image_uri,
       list(is_blurry ORDER BY processed_at)          AS verdicts,
       list(run_id ORDER BY processed_at)             AS runs
FROM read_parquet('out/results/*/*.parquet', union_by_name = true)
GROUP BY image_uri
HAVING count(DISTINCT is_blurry) > 1;

-- 12. Export the blurry images' URIs for a clean-up tool.
COPY (SELECT image_uri FROM latest WHERE is_blurry ORDER BY image_uri)
TO 'blurry_images.csv' (HEADER);
