"""deploy/: the Kubernetes manifests of both release patterns, the KServe
ServingRuntime and InferenceService are yamllint-clean (deploy/.yamllint,
warnings count as errors) and say what the issue asks: HPA min 3 / max 10
at 50 % CPU, liveness and readiness probes on /v2/health/live and
/v2/health/ready, resources on every container, an initContainer running
`inferd pull` into an emptyDir the server reads, and the Dockerfile is
multi-stage with the model copied in.

Run with Debian's python: /usr/bin/python3 tests/store/test_deploy.py
"""
import glob
import os
import subprocess
import unittest

import yaml

from release_harness import ROOT, need_tool

DEPLOY = os.path.join(ROOT, "deploy")


def documents(name):
    with open(os.path.join(DEPLOY, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


class DeployTest(unittest.TestCase):
    def test_yamllint_clean(self):
        yamllint = need_tool(self, "yamllint")
        files = sorted(glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True))
        self.assertGreaterEqual(len(files), 4)
        r = subprocess.run([yamllint, "--strict", "-c", os.path.join(DEPLOY, ".yamllint"), *files],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def check_pattern(self, name):
        docs = documents(name)
        deployment, = of_kind(docs, "Deployment")
        service, = of_kind(docs, "Service")
        hpa, = of_kind(docs, "HorizontalPodAutoscaler")
        self.assertEqual((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]), (3, 10))
        metric = hpa["spec"]["metrics"][0]["resource"]
        self.assertEqual((metric["name"], metric["target"]["averageUtilization"]), ("cpu", 50))
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"])
        pod = deployment["spec"]["template"]
        self.assertEqual(service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"])
        self.assertEqual(pod["metadata"]["labels"], deployment["spec"]["selector"]["matchLabels"])
        server = pod["spec"]["containers"][0]
        self.assertEqual(server["livenessProbe"]["httpGet"]["path"], "/v2/health/live")
        self.assertEqual(server["readinessProbe"]["httpGet"]["path"], "/v2/health/ready")
        for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
            self.assertIn("requests", container["resources"])
            self.assertIn("limits", container["resources"])
        return pod

    def test_model_in_image_manifests(self):
        pod = self.check_pattern("kubernetes/model-in-image.yaml")
        self.assertNotIn("initContainers", pod["spec"])

    def test_model_load_manifests_pull_into_a_shared_volume(self):
        pod = self.check_pattern("kubernetes/model-load.yaml")
        init, = pod["spec"]["initContainers"]
        self.assertEqual(init["command"], ["inferd"])
        self.assertEqual(init["args"][0], "pull")
        self.assertIn("--sha256", init["args"])
        store = init["args"][init["args"].index("--store") + 1]
        volume, = pod["spec"]["volumes"]
        self.assertIn("emptyDir", volume)
        self.assertEqual(init["volumeMounts"][0], {"name": volume["name"], "mountPath": store})
        server = pod["spec"]["containers"][0]
        self.assertEqual(server["volumeMounts"][0]["mountPath"], store)
        self.assertEqual(server["args"][server["args"].index("--repository") + 1], store)

    def test_async_workers_scale_on_queue_length(self):
        docs = documents("kubernetes/async-workers.yaml")
        deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
        server = deployments["iris-inferd-async"]["spec"]["template"]["spec"]["containers"][0]
        worker_pod = deployments["iris-inferd-worker"]["spec"]["template"]["spec"]
        worker = worker_pod["containers"][0]
        self.assertEqual(server["args"][0], "serve")
        self.assertEqual(server["args"][server["args"].index("--async-workers") + 1], "0")
        self.assertEqual(worker["args"][0], "worker")
        self.assertEqual(worker["args"][worker["args"].index("--queue") + 1], "$(INFERD_QUEUE)")
        queue, = of_kind(docs, "ConfigMap")
        self.assertTrue(queue["data"]["INFERD_QUEUE"].startswith("redis://"))
        self.assertGreater(worker_pod["terminationGracePeriodSeconds"], 30)
        for container in worker_pod["containers"]:
            self.assertIn("limits", container["resources"])
        hpa, = of_kind(docs, "HorizontalPodAutoscaler")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "iris-inferd-worker")
        metric = hpa["spec"]["metrics"][0]
        self.assertEqual((metric["type"], metric["external"]["metric"]["name"]), ("External", "inferd_jobs_queue_depth"))
        keda, = documents("kubernetes/async-workers-keda.yaml")
        trigger, = keda["spec"]["triggers"]
        self.assertEqual((trigger["type"], trigger["metadata"]["stream"]), ("redis-streams", "inferd:stream"))

    def test_kserve_runtime_and_inference_service(self):
        runtime, = documents("kserve/servingruntime.yaml")
        self.assertEqual(runtime["kind"], "ServingRuntime")
        self.assertEqual(runtime["spec"]["supportedModelFormats"][0]["name"], "onnx")
        self.assertEqual(set(runtime["spec"]["protocolVersions"]), {"v2", "grpc-v2"})
        container = runtime["spec"]["containers"][0]
        self.assertEqual(container["name"], "kserve-container")
        self.assertIn("/mnt/models/model.onnx", container["args"])
        self.assertEqual(container["readinessProbe"]["httpGet"]["path"], "/v2/health/ready")
        args = container["args"]
        http_port = int(args[args.index("--port") + 1])
        grpc_port = int(args[args.index("--grpc-port") + 1])
        self.assertEqual([p["containerPort"] for p in container["ports"]], [http_port])
        services = {d["metadata"]["name"]: d for d in documents("kserve/inferenceservice.yaml")}
        self.assertEqual(set(services), {"iris", "iris-grpc"})
        for service in services.values():
            self.assertEqual(service["spec"]["predictor"]["model"]["runtime"], runtime["metadata"]["name"])
        self.assertEqual(services["iris"]["spec"]["predictor"]["model"]["protocolVersion"], "v2")
        grpc_model = services["iris-grpc"]["spec"]["predictor"]["model"]
        self.assertEqual(grpc_model["protocolVersion"], "grpc-v2")
        # KServe sends HTTP/2 cleartext to the port named h2c: the runtime's --grpc-port
        self.assertEqual([(p["name"], p["containerPort"]) for p in grpc_model["ports"]], [("h2c", grpc_port)])

    def test_dockerfile_installs_what_the_build_links(self):
        """The image's build stage installs deps.sh's build libraries, and its
        runtime stage the shared library each -dev package links at run time."""
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            text = f.read()
        stages = text.split("\nFROM ")
        build_stage, runtime_stage = stages[1], stages[2]  # [0] is the header comment
        packages = subprocess.run(["bash", "-c", "source <(sed -n '/^build=/,/^# test:/p' scripts/deps.sh); "
                                   "echo ${build[@]}"], cwd=ROOT, capture_output=True, text=True, check=True)
        optional = {"libopenblas-dev"}  # the engine's own GEMM is the default; OpenBLAS is opt-in
        for package in packages.stdout.split():
            if package not in optional:
                self.assertIn(package, build_stage.split(), f"the Dockerfile's build stage lacks {package}")
        runtime_of = {"libfmt-dev": "libfmt9", "libgrpc-dev": "libgrpc29",
                      "libmicrohttpd-dev": "libmicrohttpd12", "libhiredis-dev": "libhiredis0.14",
                      "libprotobuf-c-dev": "libprotobuf-c1", "libjansson-dev": "libjansson4", "libpq-dev": "libpq5",
                      "libsqlite3-dev": "libsqlite3-0", "libpng-dev": "libpng16-16",
                      "libjpeg62-turbo-dev": "libjpeg62-turbo", "libarchive-dev": "libarchive13",
                      "libcurl4-openssl-dev": "libcurl4", "libssl-dev": "libssl3"}
        for dev, runtime in runtime_of.items():
            if dev in packages.stdout.split():
                self.assertIn(runtime, runtime_stage.split(), f"the Dockerfile's runtime stage lacks {runtime}")

    def test_dockerfile_is_multi_stage_with_the_model_copied_in(self):
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            text = f.read()
        stages = [line.split() for line in text.splitlines() if line.startswith("FROM ")]
        self.assertGreaterEqual(len(stages), 3)
        self.assertEqual(stages[0][1], "debian:12")
        self.assertIn("COPY models/iris_svc.onnx", text)
        self.assertIn("COPY --from=build", text)
        for line in text.splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                source = line.split()[1]
                self.assertTrue(os.path.exists(os.path.join(ROOT, source)), line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
