"""Entry point shared by Glue, spark-submit (EMR) and plain `python -m glue_jobs.recommender`.

Only this module looks at argv, awsglue or the Spark master; the job itself gets a SparkSession
and a JobConfig, so every line of logic is the same in all three places.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import tempfile
from collections.abc import Sequence

from pyspark import SparkConf
from pyspark.sql import SparkSession

from glue_jobs.recommender import config as cfg
from glue_jobs.recommender import report
from glue_jobs.recommender.ingest import InputError
from glue_jobs.recommender.job import JobFailed, JobResult, run

log = logging.getLogger("recommender")
EXIT_FAILED = 2
SHORT_RUN_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -Xss16m"
SHORT_RUN_BYTES = 40 << 20  # local input up to this size (~3M R1 ratings, the driver path's bound)
LOCAL_FILE_OPEN_COST = 256 * 1024


def local_input_bytes(paths: Sequence[str]) -> int | None:
    """Bytes of the local input files (paths, directories or globs); None when any is not local."""
    total = 0
    for path in paths:
        if "://" in path and not path.startswith("file://"):
            return None
        for match in glob.glob(path.removeprefix("file://")):
            if os.path.isdir(match):
                total += sum(os.path.getsize(os.path.join(root, name))
                             for root, _, names in os.walk(match) for name in names)
            else:
                total += os.path.getsize(match)
    return total


def local_session(config: cfg.JobConfig, short_run: bool | None = None) -> SparkSession:
    """A session sized for a laptop or CI box; under spark-submit the submitted master wins.
    `short_run` (default: local input of at most SHORT_RUN_BYTES) compiles with C1 only."""
    launched_here = "PYSPARK_GATEWAY_PORT" not in os.environ  # spark-submit starts the JVM first
    if launched_here:
        # Only for a JVM we start ourselves: on a cluster the driver must stay reachable.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python workers must run this interpreter (the venv), not whatever python3 is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = SparkConf()
    if short_run is None:
        size = local_input_bytes(config.input.inputs)
        short_run = size is not None and size <= SHORT_RUN_BYTES
    builder = SparkSession.builder.appName("recommender")
    if launched_here and not conf.contains("spark.master"):
        partitions = cfg.shuffle_partitions_for(config.spark.shuffle_partitions, config.spark.master)
        builder = (builder.master(config.spark.master)
                   .config("spark.driver.memory", config.spark.driver_memory)
                   # RDD shuffles (inside ALS, the top-N step) split like the SQL ones.
                   .config("spark.default.parallelism", str(partitions))
                   .config("spark.ui.enabled", "false")
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.ui.showConsoleProgress", "false")
                   # Small inputs read in several tasks, not one: a file is cut in pieces of at least
                   # this much (the default 4 MB left 100k ratings, 1.3 MB, to one core).
                   .config("spark.sql.files.openCostInBytes", str(LOCAL_FILE_OPEN_COST)))
        if short_run:
            # Small input: the run is too short for C2's optimised code to repay its compiling
            # (on the cores the job needs); C1 alone: 100k ratings end to end in 19.6 and 24.1 s
            # against 27.4 and 26.6 s with C2, 1M in 63.6 and 63.7 s against 66.1 and 68.5 s
            # (interleaved runs). Long Spark work pays for C2: the notebook's 5-fold grid at
            # 150k took 465 s under C1, 328 s without it in the previous session's bench. C1's
            # frames are larger: a plain Spark ALS (no checkpoints) overflowed the default 1 MB
            # task-thread stack deserialising its lineage, so the threads get 16 MB.
            builder = builder.config("spark.driver.extraJavaOptions", SHORT_RUN_JVM_OPTIONS)
    spark = (builder
             .config("spark.sql.adaptive.enabled", "true")
             .config("spark.sql.session.timeZone", "UTC")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def prepare_session(spark: SparkSession, config: cfg.JobConfig) -> None:
    # ALS checkpoints its factor RDDs every few iterations; without a checkpoint directory the
    # lineage grows with every iteration until a long run overflows the stack.
    spark.sparkContext.setCheckpointDir(config.spark.checkpoint_dir or tempfile.mkdtemp(prefix="als-ckpt-"))
    sc = spark.sparkContext
    spark.conf.set("spark.sql.shuffle.partitions", str(
        cfg.shuffle_partitions_for(config.spark.shuffle_partitions, sc.master or "", sc.defaultParallelism)))
    # The run's own _SUCCESS is the contract; per-directory markers from Hadoop would also be
    # picked up by QuickSight's manifest prefix as a (bad) CSV file.
    spark.sparkContext._jsc.hadoopConfiguration().set(
        "mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")


def execute(spark: SparkSession, config: cfg.JobConfig) -> JobResult:
    prepare_session(spark, config)
    return run(spark, config)


def summary(result: JobResult) -> str:
    m = result.metrics
    base, ranking, pop = m.baselines, m.test.ranking, m.baselines.popularity

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    return "\n".join([
        f"run {result.run_id} -> {result.output}",
        f"  best rank={m.best_params.rank} reg_param={m.best_params.reg_param}"
        + (f" (tuning reused from {m.tuning.reused_from})" if m.tuning.reused else ""),
        *([f"  {choice}"] if (choice := report.model_choice(m)) else []),
        f"  test RMSE {f(m.rmse)}  (bias baseline {f(base.bias_rmse)}, global mean {f(base.global_mean_rmse)})",
        f"  NDCG@{m.k} {f(ranking.ndcg_at_k)}  (popularity {f(pop.ndcg_at_k)}); "
        f"precision@{m.k} {f(ranking.precision_at_k)} (popularity {f(pop.precision_at_k)})",
        f"  quarantined {m.counts.quarantined} rows; timings {m.timings_s}",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # py4j says "Closing down clientserver connection" at INFO for every Python thread that
    # talked to the JVM: dozens of lines that hide the job's own, in a terminal and in CloudWatch.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        import awsglue  # noqa: F401  (present only inside AWS Glue)
    except ImportError:
        glue = False
    else:
        glue = True
    try:
        if glue:
            return _main_glue(argv)
        config = cfg.parse_args(argv)
        spark = local_session(config)
        result = execute(spark, config)
    except (cfg.ConfigError, InputError, JobFailed) as exc:
        log.error("run failed: %s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(summary(result))
    return 0


def _main_glue(argv: list[str]) -> int:  # pragma: no cover - needs the Glue runtime
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    full_argv = ["glue", *argv]
    job_args = getResolvedOptions(full_argv, ["JOB_NAME"]) if "--JOB_NAME" in argv else {}
    line = cfg.glue_argv(full_argv, getResolvedOptions)
    if "--checkpoint-dir" not in line and "--TempDir" in argv:
        # Glue's own temporary S3 path keeps ALS checkpoints off the workers' small disks.
        temp_dir = getResolvedOptions(full_argv, ["TempDir"])["TempDir"]
        line += ["--checkpoint-dir", temp_dir.rstrip("/") + "/als-checkpoints"]
    config = cfg.parse_args(line)
    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job.init(job_args.get("JOB_NAME", "recommender"), job_args)
    result = execute(glue_context.spark_session, config)
    print(summary(result))
    job.commit()
    return 0
