"""The util-linux jail builder (root only, where bubblewrap is missing): ``unshare`` for the
namespaces, a small shell script that mounts a tmpfs root, binds the allowed paths,
``pivot_root``s into it and execs the jail's command (which drops to the jail uid).

It renders the same :class:`methods.jail.JailSpec` as bubblewrap does (``methods/jail.py``).
"""
from __future__ import annotations

from collections.abc import Sequence

# Runs as root inside fresh mount/PID/net/IPC/UTS namespaces: build the root from the mount list
# on stdin-free arguments, pivot into it and exec the command (which drops to the jail uid).
# Arguments: ROOT TMP_SIZE N (KIND SOURCE TARGET SIZE)xN CWD env -i NAME=VALUE... COMMAND...
UNSHARE_SCRIPT = r"""
set -eu
root=$1; tmp_size=$2; n=$3; shift 3
mount -t tmpfs -o mode=0755 w2s-root "$root"
mkdir -p "$root/proc" "$root/dev" "$root/tmp" "$root/dev/shm"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o mode=0755,nosuid w2s-dev "$root/dev"
for node in null zero full random urandom tty; do
  touch "$root/dev/$node"; mount --bind "/dev/$node" "$root/dev/$node"
done
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"; ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mkdir -p "$root/dev/shm"
mount -t tmpfs -o "mode=1777,size=$tmp_size,nosuid,nodev" w2s-tmp "$root/tmp"
mount -t tmpfs -o "mode=1777,size=$tmp_size,nosuid,nodev" w2s-shm "$root/dev/shm"
while [ "$n" -gt 0 ]; do
  kind=$1; src=$2; dst=$root$3; size=$4; shift 4; n=$((n - 1))
  case $kind in
    ro|rw|dev)
      # A target inside an earlier read-only mount (an interpreter under /usr) already exists.
      if [ -d "$src" ]; then [ -d "$dst" ] || mkdir -p "$dst"
      else [ -e "$dst" ] || { mkdir -p "$(dirname "$dst")"; touch "$dst"; }; fi
      mount --bind "$src" "$dst"
      if [ "$kind" = ro ]; then mount -o remount,bind,ro,nosuid,nodev "$dst"; fi
      if [ "$kind" = rw ]; then mount -o remount,bind,nosuid,nodev "$dst"; fi ;;
    tmpfs) mkdir -p "$dst"; mount -t tmpfs -o "mode=1777,size=$size,nosuid,nodev" w2s-tmp "$dst" ;;
    symlink) mkdir -p "$(dirname "$dst")"; ln -s "$src" "$dst" ;;
    dir) mkdir -p "$dst" ;;
  esac
done
cwd=$1; shift
hostname w2s-jail
if command -v ip >/dev/null 2>&1; then ip link set lo up; fi
mkdir -p "$root/.old"
cd "$root"
pivot_root . .old
umount -l /.old
rmdir /.old
mount -o remount,bind,ro,nosuid,nodev /
cd "$cwd"
exec "$@"
"""


def unshare_argv(spec, command: Sequence[str], root: str,
                 loader: Sequence[str] = ()) -> list[str]:
    """The util-linux command line that builds ``spec``'s root at ``root`` (an empty host
    directory) and runs ``command`` (the jail's first command) inside it, in ``spec``'s
    environment only, under ``loader`` (a command prefix that execs what follows it; it runs
    before the environment is cleared, so nothing it sets reaches ``command``)."""
    items: list[str] = []
    for mount in spec.mounts:
        items += [mount.kind, str(mount.source or "-"), mount.target, str(mount.size or 0)]
    env = [f"{name}={value}" for name, value in spec.env.items()]
    return ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork", "--kill-child",
            "--propagation", "private", "--", "sh", "-c", UNSHARE_SCRIPT, "w2s-jail", root,
            str(spec.limits.tmp_bytes), str(len(spec.mounts)), *items, spec.cwd,
            *loader, "env", "-i", *env, *command]
