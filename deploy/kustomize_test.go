package deploy

import (
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// render builds a kustomization as `kubectl apply -k` would, with
// kustomize's own library, and decodes the result strictly.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{}
	m.decode(t, "kustomize build "+dir, b)
	return m
}

// TestKustomizeBuild renders the base and the example overlay and checks
// the overlay's patches landed: namespace, image, replicas, settings, and
// KEDA reading the lag from the brokers the stages use.
func TestKustomizeBuild(t *testing.T) {
	base := render(t, k8sBase)
	if len(base.deployments) == 0 || len(base.configMaps) == 0 {
		t.Fatalf("the base renders %d Deployments and %d ConfigMaps", len(base.deployments), len(base.configMaps))
	}
	m := render(t, k8sOverlay)
	if len(m.scaled) != 1 {
		t.Fatalf("the overlay renders %d ScaledObjects, want the KEDA component's one", len(m.scaled))
	}
	const ns, image = "flexiflow-example", "ghcr.io/flexiflow/flexiflow:v0.1.0"
	var settings map[string]string
	for _, c := range m.configMaps {
		if c.Namespace != ns {
			t.Errorf("ConfigMap %s in namespace %q, want %s", c.Name, c.Namespace, ns)
		}
		if c.Name == "flexiflow-settings" {
			settings = c.Data
		}
	}
	if settings["FLEXIFLOW_WORKFLOW"] == "" || !strings.Contains(settings["FLEXIFLOW_BROKERS"], "kafka.example.svc") {
		t.Errorf("settings after the overlay's patch: %v; want the base's keys with the overlay's brokers", settings)
	}
	for _, d := range m.deployments {
		if d.Namespace != ns {
			t.Errorf("Deployment %s in namespace %q, want %s", d.Name, d.Namespace, ns)
		}
		if d.Labels["app.kubernetes.io/part-of"] != "flexiflow" {
			t.Errorf("Deployment %s lacks the part-of label", d.Name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Image != image {
				t.Errorf("Deployment %s runs image %s, want %s", d.Name, c.Image, image)
			}
		}
		if d.Name == "flexiflow-classify" && (d.Spec.Replicas == nil || *d.Spec.Replicas != 2) {
			t.Errorf("flexiflow-classify replicas %v, want the overlay's 2", d.Spec.Replicas)
		}
		checkInvocation(t, "rendered Deployment "+d.Name, d.Spec.Template.Spec.Containers[0].Args, nil, settings)
	}
	for _, so := range m.scaled {
		if so.Metadata.Namespace != ns {
			t.Errorf("ScaledObject %s in namespace %q, want %s", so.Metadata.Name, so.Metadata.Namespace, ns)
		}
		for _, tr := range so.Spec.Triggers {
			if tr.Metadata["bootstrapServers"] != settings["FLEXIFLOW_BROKERS"] {
				t.Errorf("KEDA reads lag from %s, the stages use %s", tr.Metadata["bootstrapServers"], settings["FLEXIFLOW_BROKERS"])
			}
		}
	}
	for _, j := range m.jobs {
		if j.Spec.Template.Spec.Containers[0].Image != image {
			t.Errorf("Job %s runs image %s, want %s", j.Name, j.Spec.Template.Spec.Containers[0].Image, image)
		}
	}
}
