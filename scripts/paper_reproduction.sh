#!/usr/bin/env bash
# The paper's free-form condition (issue 13): LoRA r=64, alpha=128, lr 1e-4, effective batch 16, 5 epochs,
# 2,048-token sequences, on the original DerivativeAnimator corpus (418 train / 50 val rows), base model
# SmolLM2-135M-Instruct on the CPU. Starts the run, or resumes it from its latest checkpoint: every session
# reruns the same command. Runs for hours; start it detached and niced so interactive work keeps priority:
#
#   nohup setsid nice -n 19 scripts/paper_reproduction.sh > /dev/null 2>&1 &
#
# Console output: runs/paper-freeform/train.log. Every minute the growing training_log.json, loss_curve.png
# and train_config.json are copied to reports/paper-reproduction/ (commit them; the checkpoints stay in runs/).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=runs/paper-freeform
DATA=runs/original
REPORT=reports/paper-reproduction
MICRO_BATCH=1  # x GRAD_ACCUM = 16, the paper's effective batch; 4 rows of ~1,250 tokens took 23.7 GB here
GRAD_ACCUM=16
export OMP_NUM_THREADS=1  # torch's threads; measured faster than 2 on this 2-core machine (train_speed.md)
export TQDM_MININTERVAL=60  # one progress line a minute in the log file

mkdir -p "$OUT" "$REPORT"
exec 9> "$OUT/.running"
flock --nonblock 9 || { echo "the run in $OUT is already going (another paper_reproduction.sh holds it)"; exit 1; }

copy_report() {
    for file in training_log.json loss_curve.png train_config.json; do
        [ -f "$OUT/$file" ] && cp "$OUT/$file" "$REPORT/$file"
    done
    [ -f "$OUT/train.log" ] && tr '\r' '\n' < "$OUT/train.log" | grep -v '^\s*$' | tail -n 40 > "$REPORT/console_tail.txt"
}

if [ -f "$OUT/adapter_model.safetensors" ]; then
    echo "the run in $OUT has finished"; copy_report; exit 0
fi
[ -f "$DATA/train.jsonl" ] || .venv/bin/derivanim data import ../shared/reference/derivanimator-525 -o "$DATA"
if [ -f "$OUT/train_config.json" ]; then
    settings=(--resume "$OUT")  # the run's own settings, from train_config.json
else
    settings=(--out "$OUT" --task freeform --epochs 5 --lora-r 64 --lora-alpha 128 --lr 1e-4 --max-length 2048
              --batch-size "$MICRO_BATCH" --grad-accum "$GRAD_ACCUM" --log-every 1 --checkpoint-every 5)
fi
echo "$(date -Is) derivanim train --data $DATA ${settings[*]}" >> "$OUT/train.log"
.venv/bin/derivanim train --data "$DATA" "${settings[@]}" >> "$OUT/train.log" 2>&1 &
trainer=$!
while kill -0 "$trainer" 2>/dev/null; do
    copy_report
    sleep 60
done
wait "$trainer"
status=$?
echo "$(date -Is) derivanim train exited with $status" >> "$OUT/train.log"
copy_report
exit "$status"
