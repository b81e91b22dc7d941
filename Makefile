# cliplab: build, install deps (Debian packages), run the demo, test, bench.
#   make deps    install missing Debian packages (root), else print the apt-get line
#   make         build ./train
#   make demo    deps + build + the RNN no-clip vs clip demo and its comparison plot
#   make ablation / transformer / transformer-sgd / recovery / cliff   the other demo comparisons
#   make test    deps + build + every test (Criterion, PyTorch parity included)
#   make bench   deps + build + timings against PyTorch on this machine, ratios printed
#   make test-asan   the tests under AddressSanitizer + UBSan

CC      ?= cc
PYTHON  ?= /usr/bin/python3
BUILD   ?= build
PKGS    := openblas inih cairo freetype2
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O3 -g
CFLAGS  += -std=c11 -D_DEFAULT_SOURCE -fno-math-errno $(WARN) -pthread $(EXTRA_CFLAGS)
CPPFLAGS += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
TEST_LDLIBS := $(shell pkg-config --libs criterion 2>/dev/null)
# live plots (./train --live) when SDL2 is there; LIVE=0 builds without them
LIVE    ?= $(shell pkg-config --exists sdl2 2>/dev/null && echo 1 || echo 0)
ifeq ($(LIVE),1)
CPPFLAGS += -DCLIPLAB_HAVE_SDL $(shell pkg-config --cflags sdl2)
LDLIBS   += $(shell pkg-config --libs sdl2)
endif

DEB_PACKAGES := pkg-config libopenblas-dev libstb-dev libinih-dev libcriterion-dev libcairo2-dev libfreetype-dev \
                fonts-dejavu-core python3-torch python3-numpy fortunes-min fortunes \
                libsdl2-dev xvfb

SRC_DIRS  := src/engine src/clip src/train src/plot src/cli models tests
CPPFLAGS  += $(addprefix -I,$(SRC_DIRS))
LIB_SRC   := $(foreach d,$(filter-out tests,$(SRC_DIRS)),$(wildcard $(d)/*.c))
LIB_SRC   := $(filter-out src/cli/main.c,$(LIB_SRC))
HEADERS   := $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.h))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC  := $(wildcard tests/test_*.c)
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
REF_PY    := $(wildcard tests/ref/ref_*.py)
REF_BIN   := $(REF_PY:tests/ref/%.py=$(BUILD)/ref/%.bin)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps demo test test-asan bench clean check-deps
.DELETE_ON_ERROR:

# ./train for the default build; other builds (test-asan) keep theirs in $(BUILD)
TRAIN := $(if $(filter build,$(BUILD)),train,$(BUILD)/train)

all: $(TRAIN)

$(TRAIN): $(BUILD)/obj/src/cli/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# ---- dependencies ----
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "make deps: installing$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
	  echo "make deps: missing Debian packages; run:"; \
	  echo "  sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	fi

# ---- demo ----
demo: deps
	$(MAKE) train
	./train configs/rnn_noclip.ini configs/rnn_clip.ini

# every gradient-clip method on the RNN demo (same seed, data and learning
# rate), overlaid in one PNG; 1-3 minutes on 2 cores
.PHONY: ablation
ablation: deps
	$(MAKE) train
	./train configs/rnn_noclip.ini configs/rnn_clip.ini configs/rnn_value.ini configs/rnn_norm.ini configs/rnn_agc.ini configs/rnn_zclip.ini configs/rnn_adagc.ini configs/rnn_auto.ini --compare runs/rnn_methods.png

# the small GPT: no clip / global 1.0 / ZClip / AdaGC with the LLM recipe
# (AdamW), then the SGD pair where the unclipped run diverges; ~4 and ~1 min
.PHONY: transformer transformer-sgd
transformer: deps
	$(MAKE) train
	./train configs/transformer_noclip.ini configs/transformer_clip.ini configs/transformer_zclip.ini \
	  configs/transformer_adagc.ini --compare runs/transformer_methods.png
transformer-sgd: deps
	$(MAKE) train
	./train configs/transformer_sgd_noclip.ini configs/transformer_sgd_clip.ini \
	  --compare runs/transformer_sgd.png

# PaLM-style rollback: the same unclipped RNN with and without spike recovery (~10 s)
.PHONY: recovery
recovery: deps
	$(MAKE) train
	./train configs/rnn_recovery_off.ini configs/rnn_recovery.ini --compare runs/rnn_recovery.png

# Pascanu et al.'s cliff (Fig. 6): one-unit RNN, SGD from one start without and
# with norm clipping; surface.csv and the two trajectories (< 1 s)
.PHONY: cliff
cliff: deps
	$(MAKE) train
	./train configs/cliff_noclip.ini configs/cliff_clip.ini --compare runs/cliff.png

# ---- tests ----
$(BUILD)/ref/%.bin: tests/ref/%.py tests/ref/tfile.py
	@mkdir -p $(dir $@)
	$(PYTHON) $< $(BUILD)/ref

$(BUILD)/test_all: $(TEST_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(TEST_LDLIBS) $(LDLIBS)

# one test file alone, for development: make build/tests/test_clip && build/tests/test_clip
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(TEST_LDLIBS) $(LDLIBS)

test: deps
	$(MAKE) $(TRAIN) $(BUILD)/test_all $(REF_BIN)
	@mkdir -p $(BUILD)/xvfb
	OPENBLAS_NUM_THREADS=1 CLIPLAB_REF_DIR=$(BUILD)/ref CLIPLAB_TRAIN=$(TRAIN) \
	  CLIPLAB_XVFB_SCREEN=$(BUILD)/xvfb/Xvfb_screen0 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  xvfb-run -a -s "-screen 0 1280x1024x24 -fbdir $(BUILD)/xvfb" ./$(BUILD)/test_all

test-asan:
	$(MAKE) BUILD=build-asan EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -DCLIPLAB_POISON_OUTPUTS" test

# ---- benchmarks ----
$(BUILD)/bench/%: tests/bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(LDLIBS)

bench: deps
	$(MAKE) train $(BENCH_BIN)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PYTHON) tests/bench/bench.py $(BUILD)/bench

clean:
	rm -rf $(BUILD) build-asan build-nosdl train
