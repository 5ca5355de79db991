package main

import (
	"strings"
	"testing"
)

func TestReportListsSkipsAndFailures(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"start","Package":"ex/a"}`,
		`{"Action":"run","Package":"ex/a","Test":"TestEnvoy"}`,
		`{"Action":"output","Package":"ex/a","Test":"TestEnvoy","Output":"=== RUN   TestEnvoy\n"}`,
		`{"Action":"output","Package":"ex/a","Test":"TestEnvoy","Output":"\n!!! SKIPPED: no Envoy !!!\n"}`,
		`{"Action":"output","Package":"ex/a","Test":"TestEnvoy","Output":"    a_test.go:9: !!! SKIPPED: no Envoy !!!\n"}`,
		`{"Action":"output","Package":"ex/a","Test":"TestEnvoy","Output":"--- SKIP: TestEnvoy (0.00s)\n"}`,
		`{"Action":"skip","Package":"ex/a","Test":"TestEnvoy"}`,
		`{"Action":"output","Package":"ex/a","Output":"PASS\n"}`,
		`{"Action":"pass","Package":"ex/a","Elapsed":0.5}`,
		`{"Action":"output","Package":"ex/b","Output":"\n!!! END-TO-END TESTS SKIPPED: ENVOY_BIN is not set !!!\n"}`,
		`{"Action":"pass","Package":"ex/b","Elapsed":0.1}`,
		`{"Action":"output","Package":"ex/c","Test":"TestBad","Output":"    c_test.go:3: got 1, want 2\n"}`,
		`{"Action":"fail","Package":"ex/c","Test":"TestBad"}`,
		`{"Action":"output","Package":"ex/c","Output":"FAIL\tex/c\t0.2s\n"}`,
		`{"Action":"fail","Package":"ex/c","Elapsed":0.2}`,
		`{"Action":"skip","Package":"ex/d"}`,
	}, "\n")
	var out strings.Builder
	ok, err := report(strings.NewReader(in), &out)
	if err != nil || ok {
		t.Fatalf("ok %v, err %v: a failed package must fail the report", ok, err)
	}
	for _, want := range []string{
		"ok  \tex/a\t0.500s\n",
		"--- FAIL: ex/c TestBad\n    c_test.go:3: got 1, want 2\n",
		"FAIL\tex/c\t0.2s\n",
		"SKIPPED (2), so NOT tested by this run:\n",
		"  ex/a TestEnvoy: !!! SKIPPED: no Envoy !!!\n",
		"  ex/b: !!! END-TO-END TESTS SKIPPED: ENVOY_BIN is not set !!!\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReportPassesAndFailsOnNothing(t *testing.T) {
	var out strings.Builder
	if ok, err := report(strings.NewReader(`{"Action":"pass","Package":"ex/a","Elapsed":1}`), &out); !ok || err != nil {
		t.Errorf("a passing package: ok %v, err %v", ok, err)
	}
	if strings.Contains(out.String(), "SKIPPED") {
		t.Errorf("skips listed without any:\n%s", out.String())
	}
	if ok, err := report(strings.NewReader("go: no Go files\n"), &out); ok || err == nil {
		t.Errorf("no results: ok %v, err %v", ok, err)
	}
}
