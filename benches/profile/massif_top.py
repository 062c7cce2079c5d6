"""The peak snapshot of a massif output file: its largest allocation sites,
each named by the first frame of its stack that is not allocator plumbing,
in bytes and in bytes per connection. Used by heap.sh."""
import re
import sys

PLUMBING = re.compile(
    r"alloc::|alloc/src|raw_vec|bytes_mut|UnknownInlinedFun|with_capacity|__rust|"
    r"RawVec|Box<|vec/mod|new_uninit|sync/arc|arc\.rs|boxed|malloc|realloc|hashbrown|"
    r"reserve|grow|Vec<|to_vec|clone|Bytes|BytesMut|String|collections"
)


def peak_tree(lines):
    snapshot = None
    for i, line in enumerate(lines):
        if line.startswith("snapshot="):
            snapshot = i
        if line == "heap_tree=peak":
            start = i + 1
            break
    else:
        sys.exit("no peak snapshot")
    assert snapshot is not None
    nodes = []
    for line in lines[start:]:
        if line.startswith("#") or line.startswith("snapshot="):
            break
        match = re.match(r"(\s*)n\d+: (\d+) (.*)", line)
        if match:
            nodes.append((len(match.group(1)), int(match.group(2)), match.group(3)))
    return nodes


def main():
    lines = open(sys.argv[1]).read().split("\n")
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    nodes = peak_tree(lines)
    print(f"heap at the peak: {nodes[0][1]:,} B, {nodes[0][1] / clients / 1024:.2f} KiB per connection")
    for k, (depth, size, name) in enumerate(nodes):
        if depth != 1:
            continue
        below, d = k + 1, depth
        while below < len(nodes) and nodes[below][0] == d + 1 and PLUMBING.search(name):
            name, d, below = nodes[below][2], d + 1, below + 1
        print(f"{size:>12,} B {size / clients / 1024:>6.2f} KiB  {name[:140]}")


main()
