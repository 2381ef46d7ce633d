# shellcheck shell=bash
# The scenario API of e2e.sh (tests/vm/README.md, "Writing a scenario"). Source after lib.sh,
# with W (work folder), PRISTINE (disk image) and PRISTINE_LAYOUT set.
#   new_disk TAG                    private copy of the pristine disk: DISK, LAYOUT
#   make_payload USR.part OUT       an update payload: the USR image, then its kernel
#   prestage PAYLOAD                stage it into USR-B from the host (Flatcar's cgpt postinst)
#   run_guest TAG [-p PAYLOAD] [-i IGNITION] [-a ARGS] [-m MAX_BOOTS] STEP...
#                                   one qemu run through GRUB; STEP i = the Nth settled boot's
#                                   "reboot|poweroff [COMMAND]"; sets SEQ END BOOTS RUN_LOG
#   assert_seq TAG "A B A"          the exact slots GRUB booted, ending in a poweroff
#   boot_log K                      the serial lines of boot K (1-based) in a file; probe K KEY
#   hist FIELD [N], hist_count      ROOT's history after the run
#   root_write DISK PATH FILE       a file onto ROOT before the run (debugfs, no mount)

# new_disk TAG: a private copy of the pristine disk; sets DISK and LAYOUT
new_disk() {
  # one scenario disk per lane at a time: the previous one goes (a slot staged inside the
  # guest is written in full, about 1 GiB of the host's disk per scenario otherwise)
  [ -z "${DISK:-}" ] || [ "$DISK" = "$W/$1.img" ] || rm -f "$DISK" "$DISK".prestage.*
  DISK=$W/$1.img LAYOUT=$W/$1.layout
  cp --sparse=always "$PRISTINE" "$DISK"; cp "$PRISTINE_LAYOUT" "$LAYOUT"
}

# make_payload USR.part OUT: what the in-guest update stand-in (e2e-update) reads from its
# payload disk: a 4 KiB header "E2E-PAYLOAD slot=LEN", the first LEN bytes of the slot image
# (the file system and its dm-verity tree: HASH_END of build-usr.sh, whole MiB), then the
# kernel carrying the image's root hash at 0x40. Copying only LEN bytes is what Flatcar's
# update writes too (the file system and its hash tree); it halves the 2 GiB slot copy.
PAYLOAD_HDR=4096
make_payload() {
  local h len
  # shellcheck disable=SC1090
  read -r h len < <(. "${1%.part}.env"; echo "$ROOTHASH ${HASH_END:-$(stat -c %s "$1")}")
  printf 'E2E-PAYLOAD slot=%s\n' "$len" >"$2"
  truncate -s "$PAYLOAD_HDR" "$2"
  dd if="$1" of="$2" bs=4M seek="$PAYLOAD_HDR" count="$len" iflag=count_bytes oflag=seek_bytes \
    conv=notrunc,sparse status=none
  truncate -s $((PAYLOAD_HDR + len)) "$2"
  slot_kernel "$h" "$2.kernel"
  cat "$2.kernel" >>"$2"; rm -f "$2.kernel"
  truncate -s %4096 "$2"
  cp "${1%.part}.env" "$2.env"
}

# prestage PAYLOAD: stage an update into USR-B of $DISK before the run, with what the
# in-guest e2e-update writes (slot image, /flatcar/vmlinuz-b, load-b) and Flatcar's postinst
# with Flatcar's cgpt on the image. For scenarios about what happens after staging: it saves
# the boot of A that would stage it (scenario 2 stages from inside the guest).
prestage() {
  local len esp n=4 cgpt=${FLATCAR_CGPT:?FLATCAR_CGPT: the Flatcar cgpt binary on the host}
  len=$(payload_len "$1")
  dd if="$1" of="$DISK.prestage.part" bs=4M skip="$PAYLOAD_HDR" count="$len" \
    iflag=skip_bytes,count_bytes conv=sparse status=none
  cp "$1.env" "$DISK.prestage.env"
  "$VM_DIR/write-slot.sh" "$DISK" $n "$DISK.prestage.part" "$LAYOUT"
  tail -c +$((PAYLOAD_HDR + len + 1)) "$1" >"$DISK.prestage.kernel"
  esp=$(( $(gpt_attr "$DISK" 1 b) * 512 ))
  mcopy -o -i "$DISK@@$esp" "$DISK.prestage.kernel" ::/flatcar/vmlinuz-b
  load_cfg "$DISK.prestage.kernel" >"$DISK.prestage.load"
  mcopy -o -i "$DISK@@$esp" "$DISK.prestage.load" ::/flatcar/load-b
  "$cgpt" repair "$DISK" >/dev/null 2>&1
  "$cgpt" add -i $n -S0 -T1 "$DISK"
  "$cgpt" prioritize -i $n "$DISK"
  rm -f "$DISK.prestage.part" "$DISK.prestage.env" "$DISK.prestage.kernel" "$DISK.prestage.load"
}

# payload_len PAYLOAD: LEN of its header (the slot image's bytes)
payload_len() {
  local l; l=$(head -c 64 "$1" | sed -n '1s/^E2E-PAYLOAD slot=\([0-9]*\)$/\1/p')
  [ -n "$l" ] || die "$1: no E2E-PAYLOAD header"
  echo "$l"
}

# ext4_write DISK N PATH FILE: FILE as PATH on the ext4 partition N (parents created)
ext4_write() {
  local off d cmds=""; off=$(( $(gpt_attr "$1" "$2" b) * 512 ))
  d=$(dirname "$3")
  while [ "$d" != / ]; do cmds="mkdir $d"$'\n'"$cmds"; d=$(dirname "$d"); done
  printf '%srm %s\nwrite %s %s\n' "$cmds" "$3" "$4" "$3" | debugfs -w -f - "$1?offset=$off" >/dev/null 2>&1
  root_debugfs "$1" "stat $3" 2>/dev/null | grep -q '^Inode:' || [ "$2" != 9 ] || die "could not write $3 onto ROOT"
}
root_write() { ext4_write "$1" 9 "$2" "$3"; }

# run_guest TAG [-p PAYLOAD] [-i IGNITION] [-a "kernel args"] [-r "rd args"] [-m MAX_BOOTS] STEP...
# One qemu run of $DISK through Flatcar's GRUB until the guest powers off. Each STEP is what
# the Nth boot that settles (bootprobe ran and no first-boot gate is pending) does before it
# ends: "reboot [CMD]" or "poweroff [CMD]". -a appends to every boot's kernel command line
# (OEM's grub.cfg linux_append, as on Flatcar); -r replaces the initrd's failure handling
# (default "rd.shell=0 rd.emergency=reboot"); -i gives qemu an Ignition config over fw_cfg.
# Sets SEQ ("A B A"), BOOTS, END, RUN_LOG, RUN_WALL.
run_guest() {
  local tag=$1 pay="" ign="" app="" rd="" max="" opt OPTIND=2 res f
  while getopts p:i:a:r:m: opt; do
    case $opt in p) pay=$OPTARG ;; i) ign=$OPTARG ;; a) app=$OPTARG ;; r) rd=$OPTARG ;; m) max=$OPTARG ;; *) die "run_guest: bad option" ;; esac
  done
  shift $((OPTIND - 1))
  f=$W/$tag.plan; printf '%s\n' "$@" >"$f"
  root_write "$DISK" /etc/e2e/plan "$f"
  echo 0 >"$W/$tag.step"; root_write "$DISK" /var/lib/e2e/step "$W/$tag.step"
  : >"$W/$tag.oem.cfg"
  [ -z "$app" ] || printf 'set linux_append="%s"\n' "$app" >>"$W/$tag.oem.cfg"
  [ -z "$rd" ] || printf 'set linux_rd="%s"\n' "$rd" >>"$W/$tag.oem.cfg"
  [ ! -s "$W/$tag.oem.cfg" ] || ext4_write "$DISK" 6 /grub.cfg "$W/$tag.oem.cfg"
  res=$(PAYLOAD=$pay IGNITION=$ign MAX_BOOTS=${max:-$(( $# + 3 ))} WORK=$W "$VM_DIR/run-guest.sh" "$tag" "$DISK") || true
  log "$res"
  mkdir -p "$W/logs"; echo "$res" >"$W/logs/$tag.result"
  RUN_LOG=$W/logs/$tag.serial.log RUN_STAMPED=$W/logs/$tag.stamped.log RUN_TAG=$tag
  SEQ=$(sed -n 's/.* seq=\([^ ]*\) .*/\1/p' <<<"$res" | tr , ' ')
  BOOTS=$(sed -n 's/.* boots=\([0-9]*\) .*/\1/p' <<<"$res")
  END=$(sed -n 's/.* end=\([^ ]*\) .*/\1/p' <<<"$res")
  RUN_WALL=$(sed -n 's/.* wall=\([0-9.]*\)s.*/\1/p' <<<"$res")
  strip_ansi "$RUN_LOG" | grep -a -e '^GRUB-E2E:' -e '^BOOTPROBE:' -e '^SEED:' -e '^e2e-' -e 'abguard' |
    sed 's/^/  | /' >&2 || true
  # every boot's serial console in a file of its own (e2e.sh names the folder at the end)
  local k; for k in $(seq 1 "${BOOTS:-0}"); do boot_log "$k" >/dev/null; done
  TIMINGS+=("$tag: ${BOOTS:-?} boots ${SEQ:-none}, end=$END, ${RUN_WALL}s")
  boot_timings "$RUN_STAMPED" | sed 's/^/    /' | while IFS= read -r l; do log "time: $l"; done
  while IFS= read -r l; do TIMINGS+=("  $l"); done < <(boot_timings "$RUN_STAMPED")
}

# assert_seq TAG "A B A": GRUB booted exactly these slots, in this order, and the guest then
# powered off (an extra reboot, a loop or a hang fails here)
assert_seq() {
  assert "$1 boot sequence" "$2" "$SEQ"
  assert "$1 boots" "$(wc -w <<<"$2")" "$BOOTS"
  assert "$1 ended in a poweroff" poweroff "$END"
}

# boot_log K: a file with the serial lines of boot K (from its GRUB start to the next):
# logs/TAG.bootK.log, written for every boot of every run
boot_log() {
  local f=$W/logs/$RUN_TAG.boot$1.log
  strip_ansi "$RUN_LOG" | awk -v k="$1" '/^GRUB-E2E: start$/{n++} n==k' >"$f"
  echo "$f"
}
probe() { probe_field "$(boot_log "$1")" "$2"; }
# steps_taken: how many plan steps the guest ran
steps_taken() { strip_ansi "$RUN_LOG" | grep -ac '^BOOTPROBE: STEP [0-9]*: ' || true; }

# boot_timings STAMPED: one line per boot. reset->grub: the firmware (OVMF or SeaBIOS) and
# GRUB's core up to grub.cfg; grub: gptprio.next and loading kernel + initrd; grub->kernel: the
# bzImage unpacking itself until the kernel's clock starts; kernel->stage0: the kernel until it
# runs minimal-init; stage0: minimal-init until stage 2's systemd starts (guest clock);
# kernel/initrd/userspace: systemd's own split (its "kernel" includes stage 0);
# a boot that never reached userspace shows its loaded->reset time instead.
boot_timings() {
  local t0; t0=$(sed -n 's/.* t0=\([0-9.]*\)$/\1/p' <<<"$(tail -1 "$W/logs/$RUN_TAG.result" 2>/dev/null)")
  strip_ansi "$1" | awk -v t0="${t0:-0}" '
    function flush() {
      if (!n) return
      line = sprintf("boot %d (%s): reset->grub %.1fs, grub %.1fs, grub->kernel %.1fs", n, slot, st - prev, ld - st, k0 ? k0 - ld : 0)
      if (s0 != "") line = line sprintf(", kernel->stage0 %.1fs, stage0 %.1fs", s0, s2 - s0)
      if (startup != "") line = line ", " startup
      else line = line sprintf(", loaded->reset %.1fs", (rs ? rs : last) - ld)
      if (rd != "") line = line ", abguard-initrd " rd (noop != "" ? " (no-op unit " noop ")" : "")
      print line
    }
    BEGIN { prev = t0 }
    / GRUB-E2E: start$/ { flush(); n++; st = $1; prev = rs ? rs : (n > 1 ? last : prev); ld = st; rs = 0; k0 = 0; startup = ""; rd = ""; noop = ""; s0 = ""; s2 = ""; slot = "?" }
    / BOOTPROBE: stages: stage0=[0-9.]+s stage2=[0-9.]+s/ { s = $0; sub(/.*stage0=/, "", s); s0 = s + 0; sub(/.*stage2=/, "", s); s2 = s + 0 }
    / GRUB-E2E: boot slot=/ { s = $0; sub(/.*slot=/, "", s); slot = toupper(substr(s, 1, 1)) }
    / GRUB-E2E: loaded/ { ld = $1 }
    / BOOTPROBE: startup: / { s = $0; sub(/.*startup: /, "", s); gsub(/ \(/, "(", s); startup = s }
    / BOOTPROBE: abguard-initrd: / { rd = $NF }
    / BOOTPROBE: initrd-noop: / { noop = $NF }
    / reboot: (Restarting system|Power down)/ { rs = $1 }
    # a kernel line "[ uptime ]" dates the kernel start on the host clock (bzImage unpacking)
    !k0 && $2 == "[" && $3 ~ /^[0-9.]+\]$/ { u = $3; sub(/\]/, "", u); k0 = $1 - u }
    !k0 && $2 ~ /^\[[0-9.]+\]$/ { u = $2; gsub(/[][]/, "", u); k0 = $1 - u }
    # a panic resets without "reboot:": the boot ended with its last line
    { last = $1 }
    END { flush() }'
}

# hist FIELD [N]: FIELD (dotted path) of the Nth-last history entry on ROOT (default last)
hist() {
  root_cat "$DISK" /var/lib/abguard/attempts.jsonl | python3 -c '
import json, os, sys
lines = [json.loads(l) for l in sys.stdin if l.strip()]
# manual-* lines are stage/mark-good/rollback/next run by hand; the assertions read the boot
# assessment around them (HIST_ALL=1: every line)
if not os.environ.get("HIST_ALL"):
    lines = [l for l in lines if not str(l.get("event", "")).startswith("manual-")]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1
v = lines[-n] if len(lines) >= n else {}
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else (json.dumps(v) if isinstance(v, (list, dict)) else str(v).lower() if isinstance(v, bool) else v))
' "$@"
}
hist_count() { root_cat "$DISK" /var/lib/abguard/attempts.jsonl | grep -c . || true; }
# hist_of EVENT FIELD [I]: FIELD of the history lines whose event is EVENT, the last one
# (I: python index, 0 = the first)
hist_of() {
  root_cat "$DISK" /var/lib/abguard/attempts.jsonl | python3 -c '
import json, sys
v = [l for l in map(json.loads, filter(str.strip, sys.stdin)) if l.get("event") == sys.argv[1]]
i = int(sys.argv[3]) if len(sys.argv) > 3 else -1
v = v[i] if -len(v) <= i < len(v) else {}
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v)' "$@"
}
has() { grep -qF -- "$2" <<<"$1" && echo yes || echo no; }
# shellcheck disable=SC2034 # read by the scenarios and the fault matrix
ROLLED_BACK="A(P2 T0 S1) B(P1 T0 S0)"   # B spent; A's setgoodroot prioritized A
# shellcheck disable=SC2034
KEPT="A(P1 T0 S1) B(P2 T0 S1)"          # B marked good by update-engine's setgoodroot
# jsonl_count EVENT: history lines of that event on ROOT
jsonl_count() { root_cat "$DISK" /var/lib/abguard/attempts.jsonl | grep -c "\"event\":\"$1\"" || true; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a < b)}'; }
