// Command kstatus prints the kstatus result of Kubernetes objects, computed by the library Flux
// and kpt use (sigs.k8s.io/cli-utils/pkg/kstatus/status), so the tests can prove what GitOps
// tools read from PrivateVault's status with code that shares nothing with the operator.
//
// Usage:
//
//	kubectl get tenants -o json | kstatus
//	kstatus < object.json
//
// The input is one object or a List of them (as `kubectl get -o json` prints). For each object
// it prints one line, `kind/name status message`, where status is one of InProgress, Failed,
// Current, Terminating, NotFound or Unknown. Exit status 0 means every object was computed;
// anything else prints the reason on stderr.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	if len(os.Args) > 1 {
		fail("usage: kstatus < object-or-list.json")
	}
	if err := run(os.Stdin, os.Stdout); err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "kstatus:", msg)
	os.Exit(1)
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading the input: %w", err)
	}
	// apimachinery's json keeps whole numbers int64, as unstructured objects expect (generation).
	var doc map[string]interface{}
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("reading the object: %w", err)
	}
	objects := []map[string]interface{}{doc}
	if items, isList := doc["items"].([]interface{}); isList {
		objects = objects[:0]
		for i, item := range items {
			obj, ok := item.(map[string]interface{})
			if !ok {
				return fmt.Errorf("item %d of the list is not an object", i)
			}
			objects = append(objects, obj)
		}
	}
	for _, obj := range objects {
		u := &unstructured.Unstructured{Object: obj}
		result, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", u.GetKind(), u.GetName(), err)
		}
		if _, err := fmt.Fprintf(out, "%s/%s %s %s\n", u.GetKind(), u.GetName(), result.Status, result.Message); err != nil {
			return err
		}
	}
	return nil
}
