// Command argo-health runs Argo CD resource health checks (health.lua) against their tests
// (health_test.yaml, testdata/*.yaml) the way Argo CD runs a custom check configured in argocd-cm:
// gopher-lua (Lua 5.1) with the standard libraries skipped, then only the package, base and table
// libraries opened (Argo CD's util/lua/lua.go; its "safe os" is left out, so a check that needs
// os fails here), the object as the global `obj`, a one-second deadline, and the returned table
// read as {status, message} with the status one of Argo's health codes.
//
//	argo-health DIR   # DIR holds <group>/<Kind>/health.lua and health_test.yaml, as Argo keeps them
//
// It prints one line per test case and exits 1 when any case fails.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
	"gopkg.in/yaml.v3"
)

type testCase struct {
	HealthStatus struct {
		Status  string `yaml:"status"`
		Message string `yaml:"message"`
	} `yaml:"healthStatus"`
	InputPath string `yaml:"inputPath"`
}

type testFile struct {
	Tests []testCase `yaml:"tests"`
}

var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// decode turns a decoded YAML value into Lua values, as Argo CD's decodeValue does for JSON.
func decode(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case int:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(decode(l, item))
		}
		return table
	case map[string]interface{}:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), decode(l, item))
		}
		return table
	}
	return lua.LNil
}

func run(script string, obj map[string]interface{}) (string, string, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decode(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	result, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	status := lua.LVAsString(result.RawGetString("status"))
	if !validStatus[status] {
		return "Unknown", "Lua returned an invalid health status", nil
	}
	return status, lua.LVAsString(result.RawGetString("message")), nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argo-health DIR")
		os.Exit(2)
	}
	scripts, err := filepath.Glob(filepath.Join(os.Args[1], "*", "*", "health.lua"))
	if err != nil || len(scripts) == 0 {
		fmt.Fprintf(os.Stderr, "no */*/health.lua under %s\n", os.Args[1])
		os.Exit(2)
	}
	sort.Strings(scripts)
	passed, failed := 0, 0
	for _, path := range scripts {
		dir := filepath.Dir(path)
		kind := filepath.Join(filepath.Base(filepath.Dir(dir)), filepath.Base(dir))
		script, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			fmt.Printf("FAIL %s: no health_test.yaml: %v\n", kind, err)
			failed++
			continue
		}
		var tests testFile
		if err := yaml.Unmarshal(raw, &tests); err != nil || len(tests.Tests) == 0 {
			fmt.Printf("FAIL %s: health_test.yaml holds no tests (%v)\n", kind, err)
			failed++
			continue
		}
		for _, tc := range tests.Tests {
			input, err := os.ReadFile(filepath.Join(dir, tc.InputPath))
			var obj map[string]interface{}
			if err == nil {
				err = yaml.Unmarshal(input, &obj)
			}
			if err != nil {
				fmt.Printf("FAIL %s %s: %v\n", kind, tc.InputPath, err)
				failed++
				continue
			}
			status, message, err := run(string(script), obj)
			switch {
			case err != nil:
				fmt.Printf("FAIL %s %s: %v\n", kind, tc.InputPath, err)
				failed++
			case status != tc.HealthStatus.Status || message != tc.HealthStatus.Message:
				fmt.Printf("FAIL %s %s: got %s %q, want %s %q\n", kind, tc.InputPath, status, message,
					tc.HealthStatus.Status, tc.HealthStatus.Message)
				failed++
			default:
				fmt.Printf("ok   %s %s: %s\n", kind, tc.InputPath, status)
				passed++
			}
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		os.Exit(1)
	}
}
