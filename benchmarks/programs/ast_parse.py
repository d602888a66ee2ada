"""Parses the first SIZE modules of the standard library (sorted by path) with
ast, walks every tree, counts node types and unparses every tenth module: the
parser's and the compiler's allocations. Prints counts only."""
import ast
import collections
import os
import sys
import sysconfig

size = int(sys.argv[1]) if len(sys.argv) > 1 else 200
root = sysconfig.get_paths()["stdlib"]
paths = []
for directory, subdirs, files in os.walk(root):
    subdirs[:] = sorted(d for d in subdirs if d not in ("site-packages", "dist-packages", "test", "idlelib"))
    paths += [os.path.join(directory, f) for f in sorted(files) if f.endswith(".py")]
paths = sorted(paths)[:size]
counts = collections.Counter()
unparsed = 0
for i, path in enumerate(paths):
    with open(path, "rb") as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError):
        counts["<unparsable>"] += 1
        continue
    for node in ast.walk(tree):
        counts[type(node).__name__] += 1
    if i % 10 == 0:
        unparsed += len(ast.unparse(tree))
print(f"modules {len(paths)} nodes {sum(counts.values())} unparsed {unparsed}")
for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:15]:
    print(name, count)
