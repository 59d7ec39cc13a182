#!/usr/bin/env python3
"""Writes tools/imagenet_classes.txt: ImageNet's 1000 class names, one a line in class
order, as torchvision's weights metadata lists them (cnnrun --labels=imagenet).
Run it with /usr/bin/python3 (Debian's, with torchvision)."""
import os
import sys

try:
    import torchvision
except ImportError as e:
    sys.exit("imagenet_classes.py: %s; run it with /usr/bin/python3" % e)

names = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
assert len(names) == 1000 and all(n and "\n" not in n for n in names)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")
with open(path, "w", encoding="utf-8") as f:
    f.write("".join(n + "\n" for n in names))
print("wrote %d names to %s" % (len(names), path))
