"""Benchmark tf_mmcl's contrastive objectives against the reference implementations, same machine, one run.

Measured side by side:

* loss forward + backward time (gradients w.r.t. every embedding and the logit scale) of Symile
  ``"n"`` (M = 3 and 4), Symile ``"n_squared"`` (M = 3) and CLIP (M = 3), tf_mmcl in three modes
  (eager, ``tf.function``, ``tf.function(jit_compile=True)`` = XLA) against the reference
  ``symile`` package (torch) at N in ``--sizes``, d in ``--dims``. For ``"n_squared"`` two
  tf_mmcl rows: ``symile_loss`` as the library wires it (``n_squared``) and the same objective
  from the joint kernel ``tf_mmcl.ops.symile_logits.joint_streamed_logsumexps``
  (``n_squared_joint``: one shared pass over the logits for all anchors). CLIP's reference is
  the Gated Symile authors' ``losses.clip`` when ``--gated_symile_repo`` holds it (the
  ``symile`` package has no CLIP), else a minimal torch CLIP (labelled so in the output).
  For the short-step losses (``--loop_losses``, default ``n`` and CLIP) also the loop modes
  ``function_loop`` / ``xla_loop``: ``--steps_per_call`` (K) steps over K different batches in one
  call (a ``tf.while_loop``), as ``model.fit(steps_per_execution=K)`` runs training steps, reported
  per step; they show the loss without TF's fixed per-call cost, which the single-call modes pay
  every step;
* peak memory of one ``"n_squared"`` step, ours and the reference's, each in a fresh process
  (peak resident set size of the step over the resident set size just before it, after one
  warm-up step: ``/proc/self/clear_refs`` resets the high-water mark, ``VmHWM`` reads it; glibc's
  mmap threshold is pinned so that freed buffers leave the resident set on both sides);
* training throughput (examples/s) of the XOR benchmark model: one linear encoder per modality,
  L2 normalisation, a learned logit scale, AdamW, Symile loss, synthetic XOR data (a, b random
  bits, c = a XOR b), tf_mmcl (Keras) against a minimal torch loop with the reference loss;
* the roofline: the objective's FLOP/s against one square float32 matmul with the same FLOPs,
  same framework, same run;
* optional bfloat16 matmuls (float32 accumulation, logits and sums) in the joint kernel: speedup
  and relative loss error.

The torch side runs in a subprocess of ``--reference_python`` (a venv with torch and the
``symile`` package; our venv has no torch). Without it the tool says so and reports our numbers
only. Outputs: ``--output_json`` (all numbers), ``--output_md`` (ratio tables, machine, method)
and ``--plot`` (log-log time against N).

GPU column: ``tools/benchmark.py --device=gpu --skip_reference --output_json=gpu.json`` on a
machine with a GPU build of TensorFlow; then ``--gpu_json=gpu.json`` on the CPU run adds it
(``--from_json=cpu.json`` rewrites the report from a saved CPU run without measuring again).

Run it as ``python tools/benchmark.py [flags]`` (a thin entry point) or
``python -m benchmarks.contrastive [flags]`` from the repository root. The parts:

* :mod:`~benchmarks.contrastive.cli`: the flags and ``main``;
* :mod:`~benchmarks.contrastive.run`: the measurement plan (what runs where, in which order);
* :mod:`~benchmarks.contrastive.protocol`: worker processes and the line protocol they speak
  (``--worker=tf|torch --task=JSON`` runs one task and prints its result as one JSON line; the
  task ``serve`` answers one JSON command per line on stdin: prepare a cell, take a sample, quit),
  the interleaved rounds and their merge;
* :mod:`~benchmarks.contrastive.timing`: the cell timer, peak memory, machine facts;
* :mod:`~benchmarks.contrastive.tf_worker` / :mod:`~benchmarks.contrastive.torch_worker`: the
  two frameworks' tasks;
* :mod:`~benchmarks.contrastive.report`: Markdown, headline numbers and the plot from a results dict;
* :mod:`~benchmarks.contrastive.common`: cells, modes, inputs and FLOP counts shared by all.

Every module imports only the standard library at module level, so the reference interpreter
(torch, no TensorFlow) runs the workers from the same package.
"""
