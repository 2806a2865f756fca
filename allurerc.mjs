// Allure 3 report configuration: the behaviors tree as risk -> category -> policy, and
// categories by why an event failed (the agentsim_outcome label every judged test has).
// Usage: npx allure generate allure-results --config allurerc.mjs

// Generated from OUTCOME_CATEGORIES in pytest_agentsim/reporting/allure.py (a test checks
// it and prints the lines to paste). One JSON object per line, so Python can read it.
const categories = [
  {"name": "Agent crash", "matchers": {"labels": {"agentsim_outcome": "^agent_crash$"}, "statuses": ["broken", "failed"]}},
  {"name": "Judge error", "matchers": {"labels": {"agentsim_outcome": "^judge_error$"}, "statuses": ["broken", "failed"]}},
  {"name": "Inconclusive verdict", "matchers": {"labels": {"agentsim_outcome": "^inconclusive$"}, "statuses": ["broken", "failed", "skipped"]}},
  {"name": "Policy violation", "matchers": {"labels": {"agentsim_outcome": "^violation$"}, "statuses": ["failed"]}},
  {"name": "Infrastructure error", "matchers": {"labels": {"agentsim_outcome": "^infrastructure$"}, "statuses": ["broken"]}},
];

export default {
  name: "pytest-agentsim",
  plugins: {
    awesome: {
      options: { groupBy: ["epic", "feature", "story"] },
    },
  },
  categories,
};
