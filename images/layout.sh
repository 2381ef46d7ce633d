# shellcheck shell=bash
# Flatcar's disk layout GUIDs (flatcar/scripts build_library/disk_layout.json, cgpt's
# coreos types): the one copy, sourced by images/mkimage.sh and tests/vm/lib.sh and
# checked against the binary's constants by tests/ci.rs.
# shellcheck disable=SC2034 # used by the scripts that source this file
{
T_EFI=C12A7328-F81F-11D2-BA4B-00A0C93EC93B      # 1 EFI-SYSTEM
T_BIOS=21686148-6449-6E6F-744E-656564454649     # 2 BIOS-BOOT
T_USR=5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6      # 3 USR-A, 4 USR-B
T_DATA=0FC63DAF-8483-4772-8E79-3D69D8477DE4     # 6 OEM (Linux filesystem data)
T_RESERVED=C95DC21A-DF0E-4340-8D7B-26CBFA9A03E0 # 7 OEM-CONFIG
T_RESIZE=3884DD41-8582-4404-B9A8-E9B84F2DF50E   # 9 ROOT (CoreOS resize)
USR_A_PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132
USR_B_PARTUUID=e03dd35c-7c2d-4a47-b3fe-27f15780a57c
# disk_util's fixed disk GUID; bootengine randomises it on first boot
DISK_GUID=00000000-0000-0000-0000-000000000001
}
