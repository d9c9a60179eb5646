#include "optimizer/model_factory.hpp"
#include "optimizer/run_config.hpp"

#include "core/error.hpp"
#include "core/identity.hpp"
#include "dht/runner.hpp"

#include <gtest/gtest.h>

using namespace apiary;
using namespace apiary::optimizer;

namespace {
std::string error_of(const std::string& text) {
  try {
    RunConfig::parse_json(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    return e.what();
  }
  return "";
}
}  // namespace

TEST(RunConfig, ParsesAndRoundTripsCanonically) {
  auto c = RunConfig::parse_json(R"({
    "run": "fashion-demo", "target_batch_size": 2048, "batch_size": 32,
    "model": {"hidden": [128, 64], "activation": "gelu", "seed": 7},
    "optimizer": {"name": "lamb", "lr": 0.01, "weight_decay": 0.01},
    "averaging": {"mode": "local_updates", "local_steps": 20},
    "compression": {"gradients": "8bit"}})");
  EXPECT_EQ(c.run, "fashion-demo");
  EXPECT_EQ(c.model.hidden, (std::vector<std::uint32_t>{128, 64}));
  EXPECT_EQ(name_of(c.optimizer.name), "lamb");
  EXPECT_EQ(c.averaging.local_steps, 20u);
  EXPECT_EQ(name_of(c.compression.gradients), "8bit");
  EXPECT_EQ(c.dataset.name, "fashion-mnist");  // default
  auto again = RunConfig::parse_json(c.to_json());
  EXPECT_EQ(again.to_json(), c.to_json());
}

TEST(RunConfig, ClearErrorsNameTheField) {
  EXPECT_NE(error_of(R"({"run": "x", "optimizer": {"lr": -1}})").find("optimizer.lr"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "optimzer": {}})").find("unknown field optimzer"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "model": {"hidden": "big"}})").find("model.hidden"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "target_batch_size": "many"})")
                .find("target_batch_size has the wrong type"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "target_batch_size": -5})").find("target_batch_size"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": ""})").find("run must be"), std::string::npos);
  EXPECT_NE(error_of(R"({"run": "a b"})").find("run may contain"), std::string::npos);
  EXPECT_NE(error_of("{not json").find("not valid JSON"), std::string::npos);
  // A number JSON cannot hold is invalid JSON too, not another exception (fuzz finding).
  EXPECT_NE(error_of(R"({"run": "x", "target_accuracy": 1e999})").find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "compression": {"gradients": "4bit"}})")
                .find("compression.gradients"),
            std::string::npos);
}

TEST(RunConfig, MoeModelParsesValidatesAndRoundTrips) {
  auto c = RunConfig::parse_json(R"({
    "run": "moe", "model": {"type": "moe-mlp", "hidden": [64],
      "moe": {"expert_prefix": "expert", "grid": [2, 8], "expert_inner": 96, "k_best": 3,
              "k_min": 2, "gating": "switch_top1", "forward_timeout": 4.5,
              "timeout_after_k_min": 0.25, "balancing_loss_weight": 0.1}}})");
  const auto& moe = c.model.moe;
  EXPECT_EQ(moe.expert_prefix, "expert");
  EXPECT_EQ(moe.grid, (std::vector<std::uint32_t>{2, 8}));
  EXPECT_EQ(moe.expert_inner, 96u);
  EXPECT_EQ(moe.k_best, 3u);
  EXPECT_EQ(moe.k_min, 2u);
  EXPECT_EQ(moe.backward_k_min, 1u);  // default
  EXPECT_EQ(moe.gating, "switch_top1");
  EXPECT_DOUBLE_EQ(moe.forward_timeout, 4.5);
  EXPECT_DOUBLE_EQ(moe.timeout_after_k_min, 0.25);
  auto again = RunConfig::parse_json(c.to_json());
  EXPECT_EQ(again.to_json(), c.to_json());
  EXPECT_EQ(again.model.moe.grid, moe.grid);
  EXPECT_NE(c.to_json().find("\"moe\""), std::string::npos);
  // A plain MLP's canonical text has no moe section (its signature is unchanged).
  EXPECT_EQ(RunConfig::parse_json(R"({"run": "x"})").to_json().find("moe"), std::string::npos);
}

TEST(RunConfig, MoeErrorsNameTheField) {
  auto moe = [](const std::string& fields) {
    return error_of(R"({"run": "x", "model": {"type": "moe-mlp", "moe": {)" + fields + "}}}");
  };
  EXPECT_NE(error_of(R"({"run": "x", "model": {"moe": {}}})").find("only for model.type moe-mlp"),
            std::string::npos);
  EXPECT_NE(moe(R"("kbest": 2)").find("unknown field model.moe.kbest"), std::string::npos);
  EXPECT_NE(moe(R"("grid": [])").find("model.moe.grid"), std::string::npos);
  EXPECT_NE(moe(R"("grid": [4, 0])").find("model.moe.grid"), std::string::npos);
  EXPECT_NE(moe(R"("grid": [2, 2], "k_best": 5)").find("model.moe.k_best"), std::string::npos);
  EXPECT_NE(moe(R"("k_best": 2, "k_min": 3)").find("model.moe.k_min"), std::string::npos);
  EXPECT_NE(moe(R"("gating": "top2")").find("model.moe.gating"), std::string::npos);
  EXPECT_NE(moe(R"("expert_prefix": "ffn.3")").find("model.moe.expert_prefix"), std::string::npos);
  EXPECT_NE(moe(R"("forward_timeout": 0)").find("forward_timeout"), std::string::npos);
  EXPECT_NE(moe(R"("forward_timeout": 1, "timeout_after_k_min": 2)").find("timeout_after_k_min"),
            std::string::npos);
  EXPECT_NE(moe(R"("k_min": -1)").find("model.moe.k_min has the wrong type"), std::string::npos);
}

TEST(ModelFactory, BuildsTheMlpAndRefusesAnMoeModelWithoutADht) {
  auto mlp = build_model(RunConfig::parse_json(R"({"run": "x"})").model, 784, 10);
  EXPECT_EQ(mlp->describe(), "mlp 784-256-128-10");
  EXPECT_EQ(mlp->parameters().total_size(), 784u * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  auto moe = RunConfig::parse_json(
      R"({"run": "x", "model": {"type": "moe-mlp", "hidden": [64], "moe": {"grid": [2, 4]}}})");
  EXPECT_TRUE(needs_expert_dht(moe.model));
  try {
    build_model(moe.model, 784, 10, nullptr);
    FAIL() << "a moe-mlp model was built without a DHT";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    const std::string what = e.what();
    EXPECT_NE(what.find("--peers"), std::string::npos) << what;
    EXPECT_NE(what.find("--experts 'ffn.[0:2].[0:4]' --hidden 64"), std::string::npos) << what;
  }
}

// A moe-mlp model over a real (loopback) DHT in which no expert server has
// declared anything yet: batches are skipped (nullopt), not thrown, and an
// evaluation says it covered nothing.
TEST(ModelFactory, AMoeModelWithoutExpertServersSkipsItsBatches) {
  dht::DhtRunner first(dht::DhtRunner::tcp(Identity::generate(), {"127.0.0.1", 0}), {});
  auto expert_dht = connect_expert_dht({first.address()});
  auto config = RunConfig::parse_json(R"({"run": "x", "model": {"type": "moe-mlp",
      "hidden": [8], "moe": {"grid": [2, 2], "forward_timeout": 1}}})");
  auto model = build_model(config.model, 16, 3, expert_dht.get());
  EXPECT_EQ(model->describe(), "moe-mlp 16-8-[moe ffn 2x2, k=2]-3");
  nn::Dataset data;
  data.rows = 4;
  data.cols = 4;
  data.classes = 3;
  data.images.assign(5 * 16, 0.25f);
  data.labels = {0, 1, 2, 1, 0};
  auto images = nn::Tensor::view(data.images.data(), {5, 16}, nn::DType::f32, nn::Device::cpu);
  auto labels = nn::Tensor::view(data.labels.data(), {5}, nn::DType::i32, nn::Device::cpu);
  EXPECT_FALSE(model->forward_backward(images, labels).has_value());
  EXPECT_EQ(model->evaluate(data).accuracy, 0.0);
}

TEST(RunConfig, HeldRoundWindowIsItsOwnSettingAndDefaultsToTheAveragingTimeout) {
  auto plain = RunConfig::parse_json(R"({"run": "x", "averaging": {"averaging_timeout": 12}})");
  EXPECT_DOUBLE_EQ(plain.averaging.held_round_window_seconds(), 12.0);
  // Unset, it is not printed: the canonical text of older configurations is unchanged.
  EXPECT_EQ(plain.to_json().find("held_round_window"), std::string::npos);
  auto held = RunConfig::parse_json(R"({"run": "x", "averaging": {"held_round_window": 4.5}})");
  EXPECT_DOUBLE_EQ(held.averaging.held_round_window_seconds(), 4.5);
  EXPECT_EQ(RunConfig::parse_json(held.to_json()).to_json(), held.to_json());
  EXPECT_NE(held.to_json().find("\"held_round_window\":4.5"), std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "averaging": {"held_round_window": -1}})")
                .find("averaging.held_round_window"),
            std::string::npos);
}

TEST(RunConfig, MaxPeerSamplesPerSecondIsPrintedOnlyWhenSet) {
  auto plain = RunConfig::parse_json(R"({"run": "x"})");
  EXPECT_EQ(plain.to_json().find("max_peer_samples_per_second"), std::string::npos);
  auto bounded = RunConfig::parse_json(R"({"run": "x", "max_peer_samples_per_second": 2500})");
  EXPECT_DOUBLE_EQ(bounded.max_peer_samples_per_second, 2500.0);
  EXPECT_EQ(RunConfig::parse_json(bounded.to_json()).to_json(), bounded.to_json());
  EXPECT_NE(error_of(R"({"run": "x", "max_peer_samples_per_second": -3})")
                .find("max_peer_samples_per_second must be >= 0"),
            std::string::npos);
}

// What gets signed: the canonical text of existing configurations stays the same
// (recorded from the code before the field lists and enums).
TEST(RunConfig, CanonicalTextIsUnchanged) {
  EXPECT_EQ(
      RunConfig::parse_json(R"({"run": "x"})").to_json(),
      R"({"averaging":{"average_state_every":1,"averaging_timeout":30.0,"local_steps":50,"matchmaking_time":2.0,"min_group_size":2,"mode":"target_batch","outer_lr":0.7,"outer_momentum":0.9,"overlap":false,"target_group_size":16},"batch_size":64,"compression":{"gradients":"none","min_compress_elements":4096,"state":"fp16"},"dataset":{"name":"fashion-mnist","path":"/usr/share/datasets/fashion-mnist"},"max_epochs":0,"model":{"activation":"relu","hidden":[256,128],"seed":0,"type":"mlp"},"optimizer":{"beta1":0.9,"beta2":0.999,"clip_grad_norm":0.0,"eps":1e-08,"lr":0.001,"lr_decay_per_epoch":1.0,"momentum":0.9,"name":"adam","nesterov":false,"warmup_epochs":0,"weight_decay":0.0},"run":"x","target_accuracy":0.0,"target_batch_size":4096})");
  EXPECT_EQ(
      RunConfig::parse_json(R"({"run": "y", "optimizer": {"name": "sgd", "nesterov": true,
      "momentum": 0.5}, "averaging": {"overlap": true, "mode": "target_batch"}, "compression":
      {"gradients": "bf16", "state": "8bit", "min_compress_elements": 7}})")
          .to_json(),
      R"({"averaging":{"average_state_every":1,"averaging_timeout":30.0,"local_steps":50,"matchmaking_time":2.0,"min_group_size":2,"mode":"target_batch","outer_lr":0.7,"outer_momentum":0.9,"overlap":true,"target_group_size":16},"batch_size":64,"compression":{"gradients":"bf16","min_compress_elements":7,"state":"8bit"},"dataset":{"name":"fashion-mnist","path":"/usr/share/datasets/fashion-mnist"},"max_epochs":0,"model":{"activation":"relu","hidden":[256,128],"seed":0,"type":"mlp"},"optimizer":{"beta1":0.9,"beta2":0.999,"clip_grad_norm":0.0,"eps":1e-08,"lr":0.001,"lr_decay_per_epoch":1.0,"momentum":0.5,"name":"sgd","nesterov":true,"warmup_epochs":0,"weight_decay":0.0},"run":"y","target_accuracy":0.0,"target_batch_size":4096})");
}

TEST(RunConfig, NamedChoicesRoundTripThroughTheirNames) {
  for (auto name : all_names<Codec>()) EXPECT_EQ(name_of(*parse_name<Codec>(name)), name);
  for (auto name : all_names<OptimizerName>())
    EXPECT_EQ(name_of(*parse_name<OptimizerName>(name)), name);
  EXPECT_EQ(parse_name<AveragingMode>("local_updates"), AveragingMode::local_updates);
  EXPECT_FALSE(
      parse_name<Codec>("blockwise8").has_value());  // the codec's alias is not a config name
  EXPECT_EQ(names_list<OptimizerName>(), "sgd, adam, adamw or lamb");
  EXPECT_EQ(names_list<AveragingMode>(), "target_batch or local_updates");
}

TEST(RunConfig, AnExternalModelCarriesTheScriptsOptionsCanonically) {
  const auto config = RunConfig::parse_json(
      R"({"run": "lm", "model": {"type": "external", "options": {"width": 128, "layers": 4,
          "corpus": "fortunes"}}, "dataset": {"name": "fortunes"}})");
  EXPECT_EQ(config.model.type, "external");
  EXPECT_EQ(config.model.options, R"({"corpus":"fortunes","layers":4,"width":128})");
  EXPECT_EQ(config.dataset.name, "fortunes");
  EXPECT_EQ(RunConfig::parse_json(config.to_json()).to_json(), config.to_json());
  EXPECT_NE(config.to_json().find(R"("options":{"corpus":"fortunes")"), std::string::npos);
  // mlp configurations print no options (their canonical text, and signature, are unchanged).
  EXPECT_EQ(RunConfig::parse_json(R"({"run": "x"})").to_json().find("options"), std::string::npos);
  EXPECT_EQ(error_of(R"({"run": "x", "model": {"options": {}}})"),
            "config: model.options is only for model.type external");
  EXPECT_EQ(error_of(R"({"run": "x", "model": {"type": "external", "options": [1]}})"),
            "config: model.options must be an object");
  EXPECT_EQ(error_of(R"({"run": "x", "model": {"type": "cnn"}})"),
            "config: model.type must be mlp, moe-mlp or external");
  EXPECT_EQ(error_of(R"({"run": "x", "dataset": {"name": "fortunes"}})"),
            "config: dataset.name must be fashion-mnist");
  try {
    build_model(config.model, 784, 10);
    FAIL() << "apiary built an external model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("apiary.torch.Optimizer"), std::string::npos) << e.what();
  }
}

TEST(RunConfig, EpochSamplesBoundIsTheTargetOrTwoInnerPhases) {
  RunConfig c;
  c.target_batch_size = 256;
  c.batch_size = 8;
  EXPECT_EQ(c.epoch_samples_bound(), 256u);
  c.averaging.mode = AveragingMode::local_updates;
  c.averaging.local_steps = 32;
  EXPECT_EQ(c.epoch_samples_bound(), 2u * 32u * 8u);  // a postponed round's two phases
  c.target_batch_size = 4096;
  EXPECT_EQ(c.epoch_samples_bound(), 4096u);
}
