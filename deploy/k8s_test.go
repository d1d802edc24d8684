package deploy

import (
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	k8sBase    = "k8s/base"
	k8sOverlay = "k8s/overlays/example"
	k8sKEDA    = "k8s/components/keda"
)

// kustomization is the part of kustomize's Kustomization (and Component)
// these files use, decoded strictly: a field kustomize does not know, or a
// typo, fails the test. (kustomize's own types are a large module; these
// few fields are all the manifests need.)
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	} `json:"labels,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
	Patches []struct {
		Path   string `json:"path,omitempty"`
		Patch  string `json:"patch,omitempty"`
		Target *struct {
			Kind          string `json:"kind,omitempty"`
			Name          string `json:"name,omitempty"`
			LabelSelector string `json:"labelSelector,omitempty"`
		} `json:"target,omitempty"`
	} `json:"patches,omitempty"`
}

// scaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1) these
// manifests use. KEDA's types are not in k8s.io/api; this small struct is
// decoded strictly like the rest.
type scaledObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		ScaleTargetRef *struct {
			Name       string `json:"name"`
			Kind       string `json:"kind,omitempty"`
			APIVersion string `json:"apiVersion,omitempty"`
		} `json:"scaleTargetRef,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// kafkaTriggerKeys are the kafka scaler's metadata keys (KEDA docs); a key
// outside them is a typo KEDA would ignore.
var kafkaTriggerKeys = map[string]bool{
	"bootstrapServers": true, "consumerGroup": true, "topic": true, "lagThreshold": true,
	"activationLagThreshold": true, "offsetResetPolicy": true, "allowIdleConsumers": true,
	"scaleToZeroOnInvalidOffset": true, "excludePersistentLag": true, "limitToPartitionsWithLag": true,
	"partitionLimitation": true, "version": true, "sasl": true, "tls": true,
}

// manifests holds every object of a kustomization directory, by kind.
type manifests struct {
	deployments []*appsv1.Deployment
	configMaps  []*corev1.ConfigMap
	jobs        []*batchv1.Job
	pdbs        []*policyv1.PodDisruptionBudget
	namespaces  []*corev1.Namespace
	scaled      []*scaledObject
}

// decodeFile decodes every YAML document of file strictly into the API
// type its apiVersion and kind name.
func (m *manifests) decodeFile(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m.decode(t, file, b)
}

// decode decodes the YAML documents in b, read from file.
func (m *manifests) decode(t *testing.T, file string, b []byte) {
	t.Helper()
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Errorf("%s document %d: %v", file, i+1, err)
			continue
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			obj = add(&m.deployments)
		case "v1 ConfigMap":
			obj = add(&m.configMaps)
		case "batch/v1 Job":
			obj = add(&m.jobs)
		case "policy/v1 PodDisruptionBudget":
			obj = add(&m.pdbs)
		case "v1 Namespace":
			obj = add(&m.namespaces)
		case "keda.sh/v1alpha1 ScaledObject":
			obj = add(&m.scaled)
		default:
			t.Errorf("%s document %d: apiVersion %q kind %q: not a kind these tests know; add it to decodeFile", file, i+1, tm.APIVersion, tm.Kind)
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Errorf("%s document %d (%s): does not decode strictly into the API type: %v", file, i+1, tm.Kind, err)
		}
	}
}

// add appends a new, empty object to list and returns it to decode into.
func add[T any](list *[]*T) *T {
	obj := new(T)
	*list = append(*list, obj)
	return obj
}

func stripComments(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// loadKustomization decodes dir/kustomization.yaml strictly, checks every
// path it names exists, and decodes the resources (recursing into
// directories) and patch files. Patches go to patches, not to m. A
// directory in loaded (an overlay's base, loaded on its own before) is not
// decoded again; dir is added to it.
func loadKustomization(t *testing.T, dir string, loaded map[string]bool, m, patches *manifests) *kustomization {
	t.Helper()
	loaded[filepath.Clean(dir)] = true
	file := filepath.Join(dir, "kustomization.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	k := &kustomization{}
	if err := yaml.UnmarshalStrict(b, k); err != nil {
		t.Fatalf("%s does not decode strictly: %v", file, err)
	}
	switch k.APIVersion + " " + k.Kind {
	case "kustomize.config.k8s.io/v1beta1 Kustomization", "kustomize.config.k8s.io/v1alpha1 Component":
	default:
		t.Errorf("%s: apiVersion %q kind %q is not a kustomization", file, k.APIVersion, k.Kind)
	}
	for _, r := range append(append([]string{}, k.Resources...), k.Components...) {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s names %s: %v", file, r, err)
			continue
		}
		switch {
		case st.IsDir() && loaded[filepath.Clean(p)]:
		case st.IsDir():
			loadKustomization(t, p, loaded, m, patches)
		default:
			m.decodeFile(t, p)
		}
	}
	for _, p := range k.Patches {
		switch {
		case p.Path != "":
			if _, err := os.Stat(filepath.Join(dir, p.Path)); err != nil {
				t.Errorf("%s: patch %s: %v", file, p.Path, err)
				continue
			}
			patches.decodeFile(t, filepath.Join(dir, p.Path))
		case p.Patch == "":
			t.Errorf("%s: a patch with neither path nor patch", file)
		}
	}
	// Every YAML file in the directory is used: a forgotten file is a
	// manifest that silently never deploys.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() || e.Name() == "kustomization.yaml" || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		used := false
		for _, r := range k.Resources {
			used = used || r == e.Name()
		}
		for _, p := range k.Patches {
			used = used || p.Path == e.Name()
		}
		if !used {
			t.Errorf("%s is in %s but its kustomization.yaml does not use it", e.Name(), dir)
		}
	}
	return k
}

// TestKubernetesManifests decodes the kustomize base, the KEDA component
// and the example overlay strictly into the Kubernetes API types and checks
// what a deployment of the demo workflow needs.
func TestKubernetesManifests(t *testing.T) {
	wf := loadDemoWorkflow(t)
	// The overlay's own files only: the base and the component it uses are
	// decoded once, on their own.
	loaded := map[string]bool{}
	base, basePatches := &manifests{}, &manifests{}
	loadKustomization(t, k8sBase, loaded, base, basePatches)
	keda := &manifests{}
	loadKustomization(t, k8sKEDA, loaded, keda, &manifests{})
	overlay, overlayPatches := &manifests{}, &manifests{}
	ok := loadKustomization(t, k8sOverlay, loaded, overlay, overlayPatches)
	if t.Failed() {
		t.FailNow()
	}

	cm := func(ms *manifests, name string) *corev1.ConfigMap {
		for _, c := range ms.configMaps {
			if c.Name == name {
				return c
			}
		}
		return nil
	}
	settings := cm(base, "flexiflow-settings")
	if settings == nil {
		t.Fatal("the base has no ConfigMap flexiflow-settings")
	}

	t.Run("workflow ConfigMap is the demo workflow", func(t *testing.T) {
		c := cm(base, "flexiflow-workflow")
		if c == nil {
			t.Fatal("the base has no ConfigMap flexiflow-workflow")
		}
		want, err := os.ReadFile(demoWorkflow)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Data[path.Base(imageWorkflow)]; got != string(want) {
			t.Errorf("ConfigMap flexiflow-workflow key %s differs from %s: copy the file into k8s/base/workflow.yaml", path.Base(imageWorkflow), demoWorkflow)
		}
	})

	t.Run("secrets only in Secrets", func(t *testing.T) {
		for _, ms := range []*manifests{base, overlay, overlayPatches} {
			for _, c := range ms.configMaps {
				for k, v := range c.Data {
					if credentialsRE.MatchString(v) && c.Name != "flexiflow-workflow" || strings.HasSuffix(k, "PASSWORD") {
						t.Errorf("ConfigMap %s key %s holds a secret: put it in the flexiflow-secrets Secret", c.Name, k)
					}
				}
			}
			for _, d := range ms.deployments {
				for _, c := range d.Spec.Template.Spec.Containers {
					for _, e := range c.Env {
						if e.Value != "" && (credentialsRE.MatchString(e.Value) || strings.HasSuffix(e.Name, "PASSWORD")) {
							t.Errorf("Deployment %s: env %s holds a secret in the manifest: use valueFrom.secretKeyRef", d.Name, e.Name)
						}
					}
					for _, a := range c.Args {
						if credentialsRE.MatchString(a) {
							t.Errorf("Deployment %s: credentials in args", d.Name)
						}
					}
				}
			}
		}
	})

	stepDeployment := map[string]*appsv1.Deployment{}
	roles := map[string]int{}
	for _, d := range base.deployments {
		where := "Deployment " + d.Name
		spec := d.Spec.Template.Spec
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector %v does not select its own pods (labels %v)", where, d.Spec.Selector, d.Spec.Template.Labels)
		}
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("%s: pods must set runAsNonRoot and a non-zero runAsUser", where)
		}
		if len(spec.Containers) != 1 {
			t.Errorf("%s: %d containers, want 1", where, len(spec.Containers))
			continue
		}
		c := spec.Containers[0]
		if len(c.Command) > 0 {
			t.Errorf("%s: command overrides the image's entrypoint %s; use args", where, imageEntry)
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
			if e.ValueFrom != nil {
				env[e.Name] = "(from " + e.ValueFrom.String() + ")"
			}
		}
		shared := map[string]string{}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef == nil || ef.ConfigMapRef.Name != settings.Name {
				t.Errorf("%s: envFrom %v: only the %s ConfigMap is known to these tests", where, ef, settings.Name)
				continue
			}
			for k, v := range settings.Data {
				shared[k] = v
			}
		}
		sub, given := checkInvocation(t, where, c.Args, env, shared)
		roles[sub]++
		if sub == "stage" {
			stepDeployment[given["step"]] = d
		}

		// The workflow file comes from the ConfigMap.
		if w, ok := given["workflow"]; ok {
			mounted := false
			for _, vm := range c.VolumeMounts {
				if vm.MountPath != path.Dir(w) {
					continue
				}
				for _, v := range spec.Volumes {
					if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == "flexiflow-workflow" {
						mounted = true
					}
				}
			}
			if !mounted {
				t.Errorf("%s: --workflow %s is not mounted from the flexiflow-workflow ConfigMap", where, w)
			}
		}

		// Probes on the port --metrics-addr serves.
		addr, ok := given["metrics-addr"]
		if !ok {
			t.Errorf("%s: no --metrics-addr, so nothing serves its probes", where)
			continue
		}
		_, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s: --metrics-addr %q: %v", where, addr, err)
			continue
		}
		metricsPort, _ := strconv.Atoi(portStr)
		for name, pr := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
			if pr == nil || pr.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s", where, name)
				continue
			}
			want := map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"}[name]
			if pr.HTTPGet.Path != want {
				t.Errorf("%s: %s path %s, want %s", where, name, pr.HTTPGet.Path, want)
			}
			if got := resolvePort(c, pr.HTTPGet.Port); got != metricsPort {
				t.Errorf("%s: %s probes port %s (= %d), but --metrics-addr serves %d", where, name, pr.HTTPGet.Port.String(), got, metricsPort)
			}
		}
		if d.Spec.Template.Annotations["prometheus.io/port"] != portStr {
			t.Errorf("%s: prometheus.io/port annotation %q, want %s", where, d.Spec.Template.Annotations["prometheus.io/port"], portStr)
		}
		req := c.Resources.Requests
		if req.Cpu().IsZero() || req.Memory().IsZero() {
			t.Errorf("%s: set cpu and memory requests", where)
		}
	}

	t.Run("every step and the sink have a Deployment", func(t *testing.T) {
		for _, st := range wf.Steps {
			if stepDeployment[st.Name] == nil {
				t.Errorf("step %q has no Deployment running `flexiflow stage --step %s`", st.Name, st.Name)
			}
		}
		if roles["sink"] == 0 {
			t.Error("no Deployment runs `flexiflow sink`")
		}
	})

	t.Run("migrate Job", func(t *testing.T) {
		if len(base.jobs) != 1 {
			t.Fatalf("%d Jobs, want the one running flexiflow migrate", len(base.jobs))
		}
		j := base.jobs[0]
		c := j.Spec.Template.Spec.Containers[0]
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = "(secret)"
		}
		if sub, _ := checkInvocation(t, "Job "+j.Name, c.Args, env, settings.Data); sub != "migrate" {
			t.Errorf("Job %s runs %q, want migrate", j.Name, sub)
		}
	})

	t.Run("PodDisruptionBudgets", func(t *testing.T) {
		for _, d := range base.deployments {
			covered := false
			for _, p := range base.pdbs {
				sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
				if err == nil && !sel.Empty() && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					covered = true
					if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
						t.Errorf("PodDisruptionBudget %s sets neither maxUnavailable nor minAvailable", p.Name)
					}
				}
			}
			if !covered {
				t.Errorf("Deployment %s has no PodDisruptionBudget", d.Name)
			}
		}
	})

	t.Run("KEDA ScaledObject", func(t *testing.T) {
		if len(keda.scaled) == 0 {
			t.Fatal("the keda component has no ScaledObject")
		}
		for _, so := range append(append([]*scaledObject{}, keda.scaled...), overlayPatches.scaled...) {
			where := "ScaledObject " + so.Metadata.Name
			var target *appsv1.Deployment
			if so.Spec.ScaleTargetRef != nil {
				for _, d := range base.deployments {
					if d.Name == so.Spec.ScaleTargetRef.Name {
						target = d
					}
				}
				if target == nil {
					t.Errorf("%s: scaleTargetRef %q is no Deployment of the base", where, so.Spec.ScaleTargetRef.Name)
				}
			}
			if max := so.Spec.MaxReplicaCount; max != nil && int(*max) > wf.Partitions {
				t.Errorf("%s: maxReplicaCount %d exceeds the workflow's %d partitions: the extra consumers would sit idle", where, *max, wf.Partitions)
			}
			if len(so.Spec.Triggers) == 0 {
				t.Errorf("%s: no triggers", where)
			}
			for _, tr := range so.Spec.Triggers {
				if tr.Type != "kafka" {
					t.Errorf("%s: trigger type %q, want kafka", where, tr.Type)
					continue
				}
				for k := range tr.Metadata {
					if !kafkaTriggerKeys[k] {
						t.Errorf("%s: kafka trigger metadata %q is not a key of KEDA's kafka scaler", where, k)
					}
				}
				for _, k := range []string{"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} {
					if tr.Metadata[k] == "" {
						t.Errorf("%s: kafka trigger has no %s", where, k)
					}
				}
				if _, err := strconv.Atoi(tr.Metadata["lagThreshold"]); err != nil {
					t.Errorf("%s: lagThreshold %q is not a number", where, tr.Metadata["lagThreshold"])
				}
				step, ok := strings.CutPrefix(tr.Metadata["consumerGroup"], wf.Name+".")
				st, err := wf.Step(step)
				if !ok || err != nil {
					t.Errorf("%s: consumerGroup %q is no step's group (<workflow>.<step>)", where, tr.Metadata["consumerGroup"])
					continue
				}
				if tr.Metadata["topic"] != st.Topics.In {
					t.Errorf("%s: topic %q, want step %s's input %s", where, tr.Metadata["topic"], step, st.Topics.In)
				}
				if target != nil && stepDeployment[step] != target {
					t.Errorf("%s: scales %s but reads the lag of step %s", where, target.Name, step)
				}
			}
		}
	})

	t.Run("example overlay", func(t *testing.T) {
		if ok.Namespace == "" {
			t.Error("the example overlay sets no namespace")
		}
		found := false
		for _, n := range overlay.namespaces {
			found = found || n.Name == ok.Namespace
		}
		if !found {
			t.Errorf("the example overlay deploys into namespace %q but does not create it", ok.Namespace)
		}
		for _, img := range ok.Images {
			if img.Name != strings.Split(base.deployments[0].Spec.Template.Spec.Containers[0].Image, ":")[0] {
				t.Errorf("overlay image %q matches no container image of the base", img.Name)
			}
		}
		for _, p := range ok.Patches {
			if p.Target != nil && p.Target.Name != "" {
				found := false
				for _, d := range base.deployments {
					found = found || (d.Name == p.Target.Name && p.Target.Kind == "Deployment")
				}
				if !found {
					t.Errorf("overlay patch targets %s %s, which the base does not have", p.Target.Kind, p.Target.Name)
				}
			}
		}
		s := cm(overlayPatches, settings.Name)
		if s == nil {
			t.Fatal("the example overlay does not patch the settings ConfigMap")
		}
		merged := map[string]string{}
		for k, v := range settings.Data {
			merged[k] = v
		}
		for k, v := range s.Data {
			merged[k] = v
		}
		for _, d := range base.deployments {
			checkInvocation(t, "overlay: Deployment "+d.Name, d.Spec.Template.Spec.Containers[0].Args, nil, merged)
		}
		for _, so := range overlayPatches.scaled {
			for _, tr := range so.Spec.Triggers {
				if tr.Metadata["bootstrapServers"] != merged["FLEXIFLOW_BROKERS"] {
					t.Errorf("overlay: KEDA reads lag from %s but the stages use %s", tr.Metadata["bootstrapServers"], merged["FLEXIFLOW_BROKERS"])
				}
			}
		}
	})
}

// resolvePort turns a probe's port (number or container port name) into a
// number, 0 if it names no port of the container.
func resolvePort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}
