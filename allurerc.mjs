// Allure 3 report configuration: the behaviors tree as risk -> category -> policy, and
// categories by why an event failed (the agentsim_outcome label every judged test has).
// Usage: npx allure generate allure-results --config allurerc.mjs

// Generated from OUTCOME_CATEGORIES in pytest_agentsim/reporting/allure.py (a test checks
// it and prints the lines to paste). One JSON object per line, so Python can read it.
const categories = [
  {"name": "Policy violation", "matchers": {"labels": {"agentsim_outcome": "^violation$"}, "statuses": ["failed"]}, "groupBy": [{"label": "story"}], "groupByMessage": false, "expand": true},
  {"name": "Agent crash", "matchers": {"labels": {"agentsim_outcome": "^agent_crash$"}, "statuses": ["broken"]}, "groupBy": [{"label": "story"}], "groupByMessage": false, "expand": true},
  {"name": "Judge error", "matchers": {"labels": {"agentsim_outcome": "^judge_error$"}, "statuses": ["broken"]}, "groupBy": [{"label": "story"}], "groupByMessage": false, "expand": true},
  {"name": "Inconclusive verdict", "matchers": {"labels": {"agentsim_outcome": "^inconclusive$"}, "statuses": ["unknown"]}, "groupBy": [{"label": "story"}], "groupByMessage": false, "expand": true},
  {"name": "Infrastructure error", "matchers": {"labels": {"agentsim_outcome": "^infrastructure$"}, "statuses": ["broken"]}, "groupBy": [{"label": "story"}], "groupByMessage": false, "expand": true},
  {"name": "Failed pytest test", "matchers": {"labels": {"agentsim_result": "^test$"}, "statuses": ["failed", "broken"]}, "groupBy": [{"label": "story"}], "groupByMessage": false, "expand": true},
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
